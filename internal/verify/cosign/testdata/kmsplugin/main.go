// Command kmsplugin is a sigstore KMS CLI plugin for vouch's tests (sigstore's cliplugin
// protocol): installed as sigstore-kms-<name> on PATH, it serves the key reference
// <name>://<path> by returning the PEM public key stored at <path>. It cannot sign: vouch
// only ever asks a KMS for public keys.
package main

import (
	"context"
	"crypto"
	"errors"
	"io"
	"os"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/kms/cliplugin/handler"
)

var errUnsupported = errors.New("kmsplugin serves public keys only")

// fileKey is a KMS whose keys are PEM files.
type fileKey struct{ path string }

func (k fileKey) PublicKey(...signature.PublicKeyOption) (crypto.PublicKey, error) {
	raw, err := os.ReadFile(k.path)
	if err != nil {
		return nil, err
	}
	return cryptoutils.UnmarshalPEMToPublicKey(raw)
}

func (fileKey) SignMessage(io.Reader, ...signature.SignOption) ([]byte, error) {
	return nil, errUnsupported
}

func (fileKey) VerifySignature(io.Reader, io.Reader, ...signature.VerifyOption) error {
	return errUnsupported
}

func (fileKey) CreateKey(context.Context, string) (crypto.PublicKey, error) {
	return nil, errUnsupported
}

func (fileKey) CryptoSigner(context.Context, func(error)) (crypto.Signer, crypto.SignerOpts, error) {
	return nil, nil, errUnsupported
}

func (fileKey) SupportedAlgorithms() []string { return []string{"ecdsa-p256-sha256"} }
func (fileKey) DefaultAlgorithm() string      { return "ecdsa-p256-sha256" }

func main() {
	args, err := handler.GetPluginArgs(os.Args)
	if err != nil {
		_ = handler.WriteErrorResponse(os.Stdout, err)
		return
	}
	_, _ = handler.Dispatch(os.Stdout, os.Stdin, args, fileKey{path: args.InitOptions.KeyResourceID})
}
