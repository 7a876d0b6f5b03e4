package notary

import (
	"encoding/json"
	"fmt"

	"github.com/veraison/go-cose"
)

// MaxChainCertificates caps the certificates of a signature envelope's own chain (the JWS
// "x5c" header, the COSE x5chain header, label 33): real chains have two to four. More is a
// failure, found before notation parses any of them (DESIGN §6: every count is capped).
const MaxChainCertificates = 10

// envelopeChainLength returns the number of certificates in the chain an envelope of
// mediaType (JWS or COSE) carries in its unprotected header, where notation-core-go reads it,
// without parsing them. An envelope that does not decode is an error: notation could not
// verify it either.
func envelopeChainLength(mediaType string, envelope []byte) (int, error) {
	switch mediaType {
	case MediaTypeJWS:
		var env struct {
			Header struct {
				X5C []json.RawMessage `json:"x5c"`
			} `json:"header"`
		}
		if err := json.Unmarshal(envelope, &env); err != nil {
			return 0, fmt.Errorf("decoding the JWS envelope: %w", err)
		}
		return len(env.Header.X5C), nil
	case MediaTypeCOSE:
		var msg cose.Sign1Message
		if err := msg.UnmarshalCBOR(envelope); err != nil {
			return 0, fmt.Errorf("decoding the COSE envelope: %w", err)
		}
		switch chain := msg.Headers.Unprotected[cose.HeaderLabelX5Chain].(type) {
		case nil:
			return 0, nil
		case []any:
			return len(chain), nil
		default:
			return 1, nil
		}
	}
	return 0, fmt.Errorf("unsupported envelope media type %q", mediaType)
}
