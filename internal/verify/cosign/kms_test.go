package cosign_test

import (
	"context"
	"crypto"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/kms"

	"github.com/vouchproject/vouch/internal/fixture"
	"github.com/vouchproject/vouch/internal/verify"
	"github.com/vouchproject/vouch/internal/verify/cosign"
)

// kmsAttestor is an offline keys attestor whose key is a KMS reference (keys.kms).
func kmsAttestor(ref string) *verify.Attestor {
	return &verify.Attestor{Path: ".attestors[0].entries[0].keys", Kind: "keys", KeyRef: ref,
		Rekor: &verify.Rekor{IgnoreTlog: true}, CTLog: &verify.CTLog{IgnoreSCT: true}}
}

// TestKMSPlugin builds the test KMS plugin (testdata/kmsplugin, sigstore's cliplugin
// protocol), puts it on PATH as sigstore-kms-vouchtest, and verifies signatures with
// keys.kms: vouchtest://<file holding the public key>, as cosign does with
// --key <plugin>://<key>.
func TestKMSPlugin(t *testing.T) {
	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(bin, "sigstore-kms-vouchtest"), "./testdata/kmsplugin")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the KMS plugin: %v\n%s", err, out)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))

	w := newDiscWorld(t, false, cosign.Options{})
	keys := t.TempDir()
	keyFile, otherFile := filepath.Join(keys, "key.pem"), filepath.Join(keys, "other.pem")
	for path, k := range map[string]*fixture.Key{keyFile: w.key, otherFile: w.other} {
		if err := os.WriteFile(path, []byte(k.PEM), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	ctx := context.Background()
	legacy, legacyRepo := w.push(t)
	if err := w.reg.Sign(ctx, legacyRepo, legacy.Digest, w.key.Private, nil, ""); err != nil {
		t.Fatal(err)
	}
	bundled, bundledRepo := w.push(t)
	if err := w.reg.SignBundle(ctx, bundledRepo, bundled.Digest, fixture.BundleSpec{Key: w.key.Private}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		subject verify.Subject
		entry   *verify.Entry
		ref     string
		want    string
	}{
		{"legacy signature, plugin key", legacy, cosignTypeEntry, "vouchtest://" + keyFile, "pass legacy-tag"},
		{"bundle, plugin key", bundled, cosignTypeEntry, "vouchtest://" + keyFile, "pass sigstore-bundle"},
		{"bundle, plugin key, SigstoreBundle", bundled, bundleTypeEntry, "vouchtest://" + keyFile, "pass sigstore-bundle"},
		{"plugin returns another key", legacy, cosignTypeEntry, "vouchtest://" + otherFile, "fail: no matching signatures"},
		{"plugin returns another key, bundle", bundled, bundleTypeEntry, "vouchtest://" + otherFile, "fail: sigstore bundle verification failed"},
		{"plugin fails", legacy, cosignTypeEntry, "vouchtest://" + filepath.Join(keys, "missing.pem"), "undecided: failed to load public key from vouchtest://"},
		{"no such plugin", legacy, cosignTypeEntry, "nosuchkms://key", "undecided: failed to load public key from nosuchkms://key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.subject
			s.Memo = &verify.Memo{}
			wantDisc(t, w.result(t, s, tt.entry, kmsAttestor(tt.ref)), tt.want)
		})
	}
}

// countingKMS is a KMS provider for tests: it serves one public key and counts requests.
type countingKMS struct {
	kms.SignerVerifier
	pub   crypto.PublicKey
	calls *atomic.Int64
}

func (c countingKMS) PublicKey(...signature.PublicKeyOption) (crypto.PublicKey, error) {
	c.calls.Add(1)
	return c.pub, nil
}

// TestKMSKeyIsReadOncePerTTL: the public key of a KMS reference is asked once, then reused by
// every attestor and evaluation until the TTL passes; signatures are verified locally.
func TestKMSKeyIsReadOncePerTTL(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	var key *fixture.Key
	k := cosign.NewKMS(cosign.KMSOptions{Get: func(_ context.Context, ref string, _ crypto.Hash) (kms.SignerVerifier, error) {
		return countingKMS{pub: &key.Private.PublicKey, calls: &calls}, nil
	}})
	w := newDiscWorld(t, false, cosign.Options{KMS: k})
	key = w.key
	s, repo := w.push(t)
	if err := w.reg.Sign(context.Background(), repo, s.Digest, w.key.Private, nil, ""); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		s.Memo = &verify.Memo{}
		wantDisc(t, w.result(t, s, cosignTypeEntry, kmsAttestor("testkms://k")), "pass legacy-tag")
	}
	if got := calls.Load(); got != 1 {
		t.Errorf("the KMS was asked %d times, want 1", got)
	}
}
