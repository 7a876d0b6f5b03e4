//go:build integration

package main

// Background scans through a real API server: Pods stored before a policy existed get their
// PolicyReport at the next scan, and a signature removed from the registry after a Pod was
// verified shows as a failure — the scan verifies afresh, never from the admission cache.

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/vouchproject/vouch/internal/background"
)

func TestE2EBackgroundScan(t *testing.T) {
	s := startAPIServer(t)
	installKyvernoCRDs(t, s.Config)
	env := newToolEnv(t)
	cosign := toolPath(t, "cosign")
	host := startDistribution(t)
	key := env.generateKeyPair(t, cosign, "k")
	signed := pushRandom(t, host, "app:signed")
	pushRandom(t, host, "app:unsigned")
	env.mustRun(t, "", nil, cosign, "sign", "--key", key.private, "--tlog-upload=false", "-y", host+"/app@"+signed)

	ctx, cancel := context.WithTimeout(context.Background(), apiWaitTimeout)
	defer cancel()
	createNamespace(t, s.Client, "bg", nil)
	// Stored while no policy (and no webhook) is there: nothing checked them at admission.
	stored := map[string]*corev1.Pod{}
	for podName, img := range map[string]string{"signed": host + "/app:signed@" + signed, "unsigned": host + "/app:unsigned"} {
		p, err := s.Client.CoreV1().Pods("bg").Create(ctx, e2ePod("bg", podName, nil, img), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		stored[podName] = p
	}
	for _, p := range []struct {
		name       string
		background bool
	}{{"scanned", true}, {"admission-only", false}} {
		obj := e2ePolicy{kind: "ClusterPolicy", name: p.name, action: "Enforce", failurePolicy: "Fail", ref: host + "/app*", key: key.pem}.object(t)
		if err := unstructured.SetNestedField(obj.Object, p.background, "spec", "background"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Dynamic.Resource(clusterPolicyGVR).Create(ctx, obj, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	// Two replicas: one holds the Lease and scans.
	args := []string{"--background-scan-interval", "2s", "--namespace", "default", "--events=false"}
	a, b := startServeProcess(t, s, args...), startServeProcess(t, s, args...)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("vouch serve (a) log (last lines):\n%s", lastLines(a.proc.logs.String(), 30))
			t.Logf("vouch serve (b) log (last lines):\n%s", lastLines(b.proc.logs.String(), 30))
		}
	})

	// results returns the Pod's report results as "policy=result" and its first message.
	results := func(ctx context.Context, p *corev1.Pod) (string, string, error) {
		rep, err := s.Dynamic.Resource(policyReportGVR).Namespace("bg").Get(ctx, "vouch-"+string(p.UID), metav1.GetOptions{})
		if err != nil {
			return "", "", err
		}
		list, _, _ := unstructured.NestedSlice(rep.Object, "results")
		var out []string
		msg := ""
		for _, r := range list {
			r, _ := r.(map[string]any)
			if process, _, _ := unstructured.NestedString(r, "properties", "process"); process != "background scan" {
				return "", "", fmt.Errorf("result of %v from process %q, want background scan", r["policy"], process)
			}
			out = append(out, fmt.Sprintf("%v=%v", r["policy"], r["result"]))
			if msg == "" {
				msg = fmt.Sprint(r["message"])
			}
		}
		return strings.Join(out, ","), msg, nil
	}
	expect := func(what string, p *corev1.Pod, want, wantMsg string) {
		t.Helper()
		wctx, wcancel := context.WithTimeout(ctx, apiWaitTimeout)
		defer wcancel()
		waitFor(t, wctx, what, func() error {
			got, msg, err := results(wctx, p)
			switch {
			case err != nil:
				return err
			case got != want || !strings.Contains(msg, wantMsg):
				return fmt.Errorf("report results %s (%q), want %s (%q)", got, msg, want, wantMsg)
			}
			return nil
		})
	}
	expect("the signed Pod's report", stored["signed"], "scanned=pass", "verified image signatures")
	expect("the unsigned Pod's report", stored["unsigned"], "scanned=fail", "no signatures found")

	lease, err := s.Client.CoordinationV1().Leases("default").Get(ctx, background.LeaseName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// The Lease names a replica that says it leads (that two never lead at once is
	// internal/background TestElection's).
	holder := leaseHolder(lease)
	led := false
	for _, v := range []*vouchServe{a, b} {
		led = led || strings.Contains(v.proc.logs.String(), `"msg":"background scans: leading","identity":"`+holder+`"`)
	}
	if holder == "" || !led {
		t.Errorf("Lease %s held by %q, which no replica says leads", background.LeaseName, holder)
	}

	// The signature is removed from the registry: the next scan reports the failure.
	sigTag, err := name.ParseReference(host + "/app:" + strings.Replace(signed, ":", "-", 1) + ".sig")
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Head(sigTag)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Delete(sigTag.Context().Digest(desc.Digest.String())); err != nil {
		t.Fatalf("removing the signature: %v", err)
	}
	expect("the signed Pod's report after its signature was removed", stored["signed"], "scanned=fail", "no signatures found")
}

func leaseHolder(l *coordinationv1.Lease) string {
	if l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}
