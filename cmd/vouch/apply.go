package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	v1 "github.com/vouchproject/vouch/api/kyverno/v1"
	"github.com/vouchproject/vouch/internal/engine"
	"github.com/vouchproject/vouch/internal/manifest"
	"github.com/vouchproject/vouch/internal/policy"
	"github.com/vouchproject/vouch/internal/registry"
	"github.com/vouchproject/vouch/internal/report"
)

type applyOptions struct {
	resources       []string
	output          string
	namespaceLabels []string
	operation       string
	timeout         time.Duration
	tokenRealms     []string // --registry-token-realms

	creds credentialFlags // registry credentials (docs/CREDENTIALS.md)
}

func applyCommand(stdout, stderr io.Writer) *cobra.Command {
	o := &applyOptions{}
	cmd := &cobra.Command{
		Use:   "apply POLICY_PATH... --resource PATH [--resource PATH...]",
		Short: "Apply verifyImages policies to resources offline and report per policy, rule and resource",
		Long: `Apply reads Kyverno ClusterPolicy/Policy documents (files or directories, multi-document
YAML) and Kubernetes resources, evaluates every verifyImages rule and prints one result per
(policy, rule, resource).

Exit status: 0 when no result is fail or error, 1 otherwise, 2 for bad usage or invalid input.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.run(cmd.Context(), args, stdout, stderr)
		},
	}
	f := cmd.Flags()
	f.StringArrayVarP(&o.resources, "resource", "r", nil, "resource file or directory (repeatable)")
	f.StringVarP(&o.output, "output", "o", "table", "output format: table, json or yaml")
	f.StringArrayVar(&o.namespaceLabels, "namespace-labels", nil,
		"labels of a namespace for namespaceSelector, as NAMESPACE:key=value[,key=value] (repeatable); Namespace objects among the resources also provide labels")
	f.StringVar(&o.operation, "operation", "CREATE", "admission operation to evaluate: CREATE, UPDATE, DELETE or CONNECT")
	f.DurationVar(&o.timeout, "timeout", 30*time.Second, "time budget for evaluating one resource (registry calls included)")
	f.StringSliceVar(&o.tokenRealms, "registry-token-realms", nil, registryTokenRealmsUsage)
	o.creds.registerApply(f)
	return cmd
}

func (o *applyOptions) run(ctx context.Context, policyPaths []string, stdout, stderr io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if len(o.resources) == 0 {
		return invalid(errors.New("apply: at least one --resource is required"))
	}
	switch o.output {
	case "table", "json", "yaml":
	default:
		return invalid(fmt.Errorf("apply: --output must be table, json or yaml, not %q", o.output))
	}
	op := v1.AdmissionOperation(strings.ToUpper(o.operation))
	switch op {
	case v1.Create, v1.Update, v1.Delete, v1.Connect:
	default:
		return invalid(fmt.Errorf("apply: --operation must be CREATE, UPDATE, DELETE or CONNECT, not %q", o.operation))
	}
	set, warnings, err := policy.Load(policyPaths)
	for _, w := range warnings {
		fmt.Fprintf(stderr, "warning: %s\n", w)
	}
	if err != nil {
		return invalid(err)
	}
	docs, err := manifest.ReadPaths(o.resources)
	if err != nil {
		return invalid(err)
	}
	objects, err := manifest.Objects(docs)
	if err != nil {
		return invalid(err)
	}
	nsLabels := manifest.NamespaceLabels(objects)
	if err := parseNamespaceLabels(o.namespaceLabels, nsLabels); err != nil {
		return invalid(err)
	}
	warnUnknownNamespaces(set, objects, nsLabels, stderr)
	if o.timeout <= 0 {
		return invalid(fmt.Errorf("apply: --timeout must be positive"))
	}
	creds, err := o.creds.resolver(nil)
	if err != nil {
		return invalid(fmt.Errorf("apply: %w", err))
	}
	warnUnreadSecrets(set, stderr)
	if _, err := registry.New(registry.Options{TokenRealms: o.tokenRealms}); err != nil {
		return invalid(fmt.Errorf("apply: --registry-token-realms: %w", err))
	}
	loaders, err := resourceLoaders(objects)
	if err != nil {
		return invalid(fmt.Errorf("apply: %w", err))
	}
	eng, err := newEngine(set, registry.Options{TokenRealms: o.tokenRealms}, engineExtras{credentials: creds, loaders: loaders})
	if err != nil {
		return err
	}
	rep := report.New()
	for _, obj := range objects {
		ns, _ := obj.Value["metadata"].(map[string]any)["namespace"].(string)
		rctx, cancel := context.WithTimeout(ctx, o.timeout)
		resp, err := eng.Evaluate(rctx, engine.Request{Object: obj.Value, Operation: op, NamespaceLabels: nsLabels[ns]})
		cancel()
		if err != nil {
			return fmt.Errorf("%s: %w", obj.Doc.Location(), err)
		}
		for _, w := range resp.Warnings {
			fmt.Fprintf(stderr, "warning: %s\n", w)
		}
		rep.Add(resp)
	}
	if err := write(rep, o.output, stdout); err != nil {
		return err
	}
	if rep.Failed() {
		return &exitError{code: exitFailed, err: errors.New("policy violations or errors")}
	}
	return nil
}

// registryTokenRealmsUsage documents --registry-token-realms (docs/SECURITY.md).
const registryTokenRealmsUsage = "hosts (host or host:port, \"*\" for one DNS label) of HTTPS token services that may receive a registry's credentials besides the registry's own host, added to the built-in list of the well-known registries' (comma-separated)"

func write(rep *report.Report, format string, w io.Writer) error {
	switch format {
	case "json":
		return rep.WriteJSON(w)
	case "yaml":
		return rep.WriteYAML(w)
	default:
		f, ok := w.(*os.File)
		return rep.WriteTable(w, ok && term.IsTerminal(int(f.Fd())))
	}
}

// parseNamespaceLabels reads NAMESPACE:key=value[,key=value] flags into into.
func parseNamespaceLabels(flags []string, into map[string]map[string]string) error {
	for _, f := range flags {
		ns, list, ok := strings.Cut(f, ":")
		if !ok || ns == "" {
			return fmt.Errorf("--namespace-labels %q: want NAMESPACE:key=value[,key=value]", f)
		}
		labels := into[ns]
		if labels == nil {
			labels = map[string]string{}
			into[ns] = labels
		}
		for _, kv := range strings.Split(list, ",") {
			if kv == "" {
				continue
			}
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return fmt.Errorf("--namespace-labels %q: %q is not key=value", f, kv)
			}
			labels[k] = v
		}
	}
	return nil
}

// warnUnknownNamespaces says when a namespaceSelector is evaluated for a namespace whose
// labels were never given: offline, such selectors see no labels.
func warnUnknownNamespaces(set *policy.Set, objects []manifest.Object, known map[string]map[string]string, stderr io.Writer) {
	if !set.UsesNamespaceSelector() {
		return
	}
	warned := map[string]bool{}
	for _, obj := range objects {
		ns, _ := obj.Value["metadata"].(map[string]any)["namespace"].(string)
		if ns == "" || warned[ns] {
			continue
		}
		if _, ok := known[ns]; !ok {
			warned[ns] = true
			fmt.Fprintf(stderr, "warning: namespace %q has no known labels; namespaceSelector rules see it as unlabelled (give --namespace-labels %s:key=value or a Namespace object)\n", ns, ns)
		}
	}
}
