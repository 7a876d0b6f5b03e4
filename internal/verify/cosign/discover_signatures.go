package cosign

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sigstore/cosign/v3/pkg/cosign"
	"github.com/sigstore/cosign/v3/pkg/oci"
	sgverify "github.com/sigstore/sigstore-go/pkg/verify"
	"github.com/sigstore/sigstore/pkg/signature/payload"

	"github.com/vouchproject/vouch/internal/verify"
)

// candidate is one signature found for a subject: a simple-signing signature (cosign's .sig
// tag or OCI 1.1 referrer) or a Sigstore bundle, with the route that found it.
type candidate struct {
	route    string // a verify.Route* constant
	detail   string
	referrer string
	sig      oci.Signature // simple signing, or a DSSE envelope for attestations
	bundle   *Bundle
	until    time.Time // once accepted: how long it keeps verifying (zero: unbounded)
}

// found is everything discovery found for one attestor's verification: the candidates, why
// some artifacts could not be read (reported when nothing verifies), and the routes that
// could not be listed at all (undecided when nothing verifies).
type found struct {
	candidates []*candidate
	problems   []string
	undecided  []error
	tooLarge   error // a cap was exceeded: a failure whatever else was found
}

// keep records a route's outcome: its candidates, or its error — a failure-channel error (a
// cap exceeded, a malformed listing) becomes a problem, an undecided one is kept as such.
func (f *found) keep(cands []*candidate, problems []string, err error) {
	switch {
	case err == nil:
		f.candidates = append(f.candidates, cands...)
		f.problems = append(f.problems, problems...)
	case verify.Undecided(err):
		f.undecided = append(f.undecided, err)
	case verify.CodeOf(err) == verify.CodeTooLarge:
		if f.tooLarge == nil {
			f.tooLarge = err
		}
	default:
		f.problems = append(f.problems, err.Error())
	}
}

// signatureRoutes returns the two groups of routes where cosign v2 and v3 put a subject's
// signatures, in the signature repository, in the order they are read: cosign's
// sha256-<hex>.sig tag; then its OCI 1.1 signature referrers and the Sigstore bundle signature
// referrers (by the referrers API, else the referrers tag schema). With cosignOCI11 the
// referrers come first, as cosign reads them first. Each source is read once per evaluation
// (the subject's memo) and shared by every attestor.
func (v *Verifier) signatureRoutes(ctx context.Context, s verify.Subject, e *verify.Entry, src *source) (first, second func(*found)) {
	legacy := func(f *found) {
		read, err := v.signatures(ctx, s, src.digest, src.ropts)
		if err != nil {
			f.keep(nil, nil, err)
			return
		}
		var cands []*candidate
		for _, sig := range read.sigs {
			cands = append(cands, &candidate{route: verify.RouteLegacyTag, sig: sig, detail: "cosign signature tag"})
		}
		f.keep(cands, read.problems, nil)
	}
	referrers := func(f *found) {
		list, err := v.listReferrers(ctx, s, src, src.sigRepo)
		if err != nil {
			f.keep(nil, nil, err)
			return
		}
		f.problems = append(f.problems, list.problems...)
		f.keep(v.referrerSignatures(ctx, s, src, src.sigRepo, list))
		bundles, problems, err := v.bundles(ctx, s, src, src.sigRepo, list)
		var cands []*candidate
		for _, b := range bundles {
			if b.IsSignature() {
				cands = append(cands, &candidate{route: verify.RouteSigstoreBundle, bundle: b, referrer: b.Referrer, detail: b.detail()})
			}
		}
		f.keep(cands, problems, err)
	}
	if e.CosignOCI11 {
		return referrers, legacy
	}
	return legacy, referrers
}

// discoverBundles finds the subject's Sigstore bundles among its referrers in the image's own
// repository (type: SigstoreBundle, spec §3.11: repository overrides are not used). Every
// bundle counts, signature or attestation, as in Kyverno.
func (v *Verifier) discoverBundles(ctx context.Context, s verify.Subject, src *source) *found {
	f := &found{}
	repo := src.digest.Context()
	list, err := v.listReferrers(ctx, s, src, repo)
	if err != nil {
		f.keep(nil, nil, err)
		return f
	}
	f.problems = append(f.problems, list.problems...)
	bundles, problems, err := v.bundles(ctx, s, src, repo, list)
	var cands []*candidate
	for _, b := range bundles {
		cands = append(cands, &candidate{route: verify.RouteSigstoreBundle, bundle: b, referrer: b.Referrer, detail: b.detail()})
	}
	f.keep(cands, problems, err)
	return f
}

// verifyCosign verifies type: Cosign (spec §3.3) over every layout: the first group of routes,
// and only when it does not pass for this attestor, the second — so that an image signed in
// the layout read first costs what it did before referrers were read. A source that could not
// be read (registry down, 429, authentication) ends the verification as undecided: the
// signature that would have verified may be there, and a struggling registry is not asked
// for more.
func (v *Verifier) verifyCosign(ctx context.Context, s verify.Subject, e *verify.Entry, a *verify.Attestor, p *plan, tr *trustRoot, src *source) (*verify.Evidence, error) {
	first, second := v.signatureRoutes(ctx, s, e, src)
	want := a.EffectiveAnnotations(e)
	f := &found{}
	first(f)
	if len(f.undecided) > 0 {
		return nil, joinUndecided(f.undecided)
	}
	if f.tooLarge == nil && len(f.candidates) > 0 {
		if ev, err := v.check(ctx, f, src.hash, a, p, tr, want); err == nil || verify.Undecided(err) {
			return ev, err
		}
	}
	second(f)
	if len(f.undecided) > 0 {
		return nil, joinUndecided(f.undecided)
	}
	return v.check(ctx, f, src.hash, a, p, tr, want)
}

// verifyBundles verifies type: SigstoreBundle (spec §3.11).
func (v *Verifier) verifyBundles(ctx context.Context, s verify.Subject, e *verify.Entry, a *verify.Attestor, p *plan, tr *trustRoot, src *source) (*verify.Evidence, error) {
	f := v.discoverBundles(ctx, s, src)
	if len(f.undecided) > 0 {
		return nil, joinUndecided(f.undecided)
	}
	ev, err := v.check(ctx, f, src.hash, a, p, tr, a.EffectiveAnnotations(e))
	if err != nil && !verify.Undecided(err) {
		var ve *verify.Error
		code := verify.CodeOf(err)
		msg := "sigstore bundle verification failed: no matching signatures found"
		if asVerifyError(err, &ve) && ve.Msg != "" {
			msg += ": " + ve.Error()
		}
		return nil, verify.Errorf(code, msg, nil)
	}
	return ev, err
}

// check verifies the candidates against the attestor: cryptographically (cosign's checks
// for simple signing, sigstore-go's for bundles, both bound to the digest), then vouch's
// identity and pinned-certificate checks, then the annotations. Its errors keep cosign's and
// Kyverno's wording: "no signatures found", "no matching signatures: ...", identity
// mismatches, "no signature matched the required annotations".
func (v *Verifier) check(ctx context.Context, f *found, h v1.Hash, a *verify.Attestor, p *plan, tr *trustRoot, want map[string]string) (*verify.Evidence, error) {
	if f.tooLarge != nil {
		return nil, f.tooLarge
	}
	if len(f.candidates) == 0 {
		if len(f.problems) > 0 {
			return nil, verify.Errorf(verify.CodeNoMatch, "no matching signatures: "+strings.Join(f.problems, "\n "), nil)
		}
		return nil, verify.Errorf(verify.CodeNoSignatures, "no signatures found", nil)
	}
	var bt *bundleTrust
	var sigs []*candidate
	var bundles []*bundleOutcome
	problems := append([]string(nil), f.problems...)
	for _, c := range f.candidates {
		if c.bundle == nil {
			if err := verifySimple(ctx, c.sig, h, p.co); err != nil {
				problems = append(problems, err.Error())
				continue
			}
			sigs = append(sigs, c)
			continue
		}
		if bt == nil {
			var err error
			if bt, err = newBundleTrust(a, tr, p.co.SigVerifier); err != nil {
				return nil, err
			}
		}
		res, err := bt.verifyBundle(c.bundle, h)
		if err != nil {
			problems = append(problems, c.detail+": "+err.Error())
			continue
		}
		bundles = append(bundles, &bundleOutcome{c: c, res: res})
	}
	if len(sigs) == 0 && len(bundles) == 0 {
		return nil, verify.Errorf(verify.CodeNoMatch, "no matching signatures: "+strings.Join(problems, "\n "), nil)
	}
	accepted, err := v.accept(sigs, bundles, p, bt)
	if err != nil {
		return nil, err
	}
	return evidenceOf(accepted, h, want)
}

// bundleOutcome is a bundle sigstore-go verified, with what it established.
type bundleOutcome struct {
	c   *candidate
	res *sgverify.VerificationResult
}

// verifySimple verifies one simple-signing signature with cosign (signature, certificate,
// SCT, Rekor bundle, timestamp; the payload must name the digest).
func verifySimple(ctx context.Context, sig oci.Signature, h v1.Hash, co *cosign.CheckOpts) error {
	if !co.IgnoreTlog {
		if b, err := sig.Bundle(); err == nil && b == nil {
			return fmt.Errorf("no Rekor bundle on the signature: transparency-log inclusion is verified offline, from the bundle")
		}
	}
	_, err := cosign.VerifyImageSignature(ctx, sig, h, co)
	return err
}

// accept applies the identity and pinned-certificate checks to the verified candidates.
func (v *Verifier) accept(sigs []*candidate, bundles []*bundleOutcome, p *plan, bt *bundleTrust) ([]*candidate, error) {
	var out []*candidate
	var firstErr error
	if len(sigs) > 0 {
		list := make([]oci.Signature, len(sigs))
		for i, c := range sigs {
			list[i] = c.sig
		}
		ok, err := p.accept(list)
		if err != nil {
			firstErr = err
		}
		for _, sig := range ok {
			for _, c := range sigs {
				if c.sig == sig {
					c.until = p.validUntil(sig)
					out = append(out, c)
				}
			}
		}
	}
	var problems []string
	for _, b := range bundles {
		if err := bt.accept(leafOf(b.c.bundle), b.res); err != nil {
			problems = append(problems, err.Error())
			continue
		}
		b.c.until = bt.validUntil(b.c.bundle, b.res)
		out = append(out, b.c)
	}
	if len(out) > 0 {
		return out, nil
	}
	code, sep := verify.CodeNoMatch, "\n "
	if p.keyless != nil {
		code, sep = verify.CodeIdentity, "; "
	}
	if firstErr != nil {
		var ve *verify.Error
		if asVerifyError(firstErr, &ve) {
			code = ve.Code
		}
		problems = append([]string{strings.TrimPrefix(firstErr.Error(), "no matching signatures: ")}, problems...)
	}
	msg := strings.Join(problems, sep)
	if code == verify.CodeNoMatch {
		msg = "no matching signatures: " + msg
	}
	return nil, verify.Errorf(code, msg, nil)
}

// evidenceOf checks the required annotations (at least one accepted signature must carry
// every key with exactly that string value, spec §3.8) and returns the digest and route of the
// first accepted signature (the one that matched the annotations, when some are required).
// The evidence holds while any of the signatures that matched does: until the latest of their
// bounds, unbounded when one of them is.
func evidenceOf(accepted []*candidate, h v1.Hash, want map[string]string) (*verify.Evidence, error) {
	var first *verify.Evidence
	var matched *verify.Evidence
	var until time.Time
	unbounded := false
	for _, c := range accepted {
		ev := &verify.Evidence{Route: c.route, Detail: c.detail}
		var ann map[string]any
		if c.bundle != nil {
			ev.Digest, ann = h.String(), c.bundle.annotations(h)
		} else {
			raw, err := c.sig.Payload()
			if err != nil {
				return nil, verify.Errorf(verify.CodeInvalid, "reading signature payload", err)
			}
			var pl payload.SimpleContainerImage
			if err := json.Unmarshal(raw, &pl); err != nil {
				return nil, verify.Errorf(verify.CodeInvalid, "decoding signature payload", err)
			}
			ev.Digest, ann = pl.Critical.Image.DockerManifestDigest, pl.Optional
		}
		if first == nil {
			first = ev
		}
		if len(want) == 0 || annotationsMatch(ann, want) {
			if matched == nil {
				matched = ev
			}
			if c.until.IsZero() {
				unbounded = true
			} else if c.until.After(until) {
				until = c.until
			}
		}
	}
	if matched == nil {
		return nil, verify.Errorf(verify.CodeAnnotations, "no signature matched the required annotations", nil)
	}
	if first.Digest == "" {
		return nil, verify.Errorf(verify.CodeInvalid, "failed to extract image digest from signature payload", nil)
	}
	matched.Digest = first.Digest
	if !unbounded {
		matched.ValidUntil = until
	}
	return matched, nil
}

// joinUndecided combines the errors of sources that could not be read into one undecided
// error.
func joinUndecided(undecided []error) error {
	if len(undecided) == 1 {
		return undecided[0]
	}
	parts := make([]string, 0, len(undecided))
	for _, err := range undecided {
		parts = append(parts, err.Error())
	}
	return verify.Errorf(verify.CodeOf(undecided[0]), strings.Join(parts, "; "), undecided[0])
}

func asVerifyError(err error, target **verify.Error) bool { return errors.As(err, target) }
