package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strings"

	v1 "github.com/vouchproject/vouch/api/kyverno/v1"
	"github.com/vouchproject/vouch/internal/conditions"
)

// ContextEntry is one compiled rule context entry (spec §2.3). vouch loads `variable`,
// `configMap`, `apiCall` (GET of a urlPath) and `imageRegistry` entries; globalReference
// entries and apiCall POST or service calls are Unsupported: loading one is an error, so the
// rule fails closed.
type ContextEntry struct {
	Name string
	Path string // field path, e.g. "spec.rules[0].context[1]"
	// Unsupported names the kind of an entry vouch cannot load yet ("apiCall", ...).
	Unsupported string
	value       *conditions.Value    // variable.value (nil: none)
	jmesPath    *conditions.Template // variable.jmesPath (nil: none)
	def         *conditions.Value    // variable.default (nil: none)
	// configMap.name and configMap.namespace; policyNamespace is the namespace of a
	// namespaced Policy, which may read ConfigMaps of its own namespace only.
	cmName, cmNamespace *conditions.Template
	policyNamespace     string
	// apiCall.urlPath and apiCall.jmesPath (nil: none).
	urlPath, callJMESPath *conditions.Template
	// imageRegistry.reference, imageRegistry.jmesPath (nil: none) and its credentials.
	imageRef, imageJMESPath *conditions.Template
	imageCredentials        *v1.ImageRegistryCredentials
}

// Loaders read what context entries take from outside the request. A nil loader makes the
// entries that need it fail to load.
type Loaders struct {
	// ConfigMap returns a ConfigMap as a context value: {"data": {...}, "metadata": {...}}.
	ConfigMap func(ctx context.Context, namespace, name string) (map[string]any, error)
	// APICall returns the decoded JSON of a GET of an API server path (apiCall.urlPath).
	APICall func(ctx context.Context, path string) (any, error)
	// ImageData returns an image's data from its registry (imageRegistry entries), with the
	// entry's registry credentials.
	ImageData func(ctx context.Context, reference string, credentials *v1.ImageRegistryCredentials) (any, error)
	// SecretKey returns a Secret's cosign.pub (SecretKeyName), the public key keys.secret and
	// k8s://<namespace>/<name> references name (Verification.ResolveSecretKeys).
	SecretKey func(ctx context.Context, namespace, name string) (string, error)
}

// maxContextBytes caps the JSON size of one loaded context entry, as the JSON of a rendered
// value can grow with the request (Kyverno caps the whole context at 2 MiB).
const maxContextBytes = 2 << 20

func compileContextEntry(e *v1.ContextEntry, path, policyNamespace string) (*ContextEntry, error) {
	c := &ContextEntry{Name: e.Name, Path: path, policyNamespace: policyNamespace}
	switch {
	case e.ConfigMap != nil:
		var err error
		if c.cmName, err = conditions.CompileTemplate(e.ConfigMap.Name, path+".configMap.name"); err != nil {
			return nil, err
		}
		if c.cmNamespace, err = conditions.CompileTemplate(e.ConfigMap.Namespace, path+".configMap.namespace"); err != nil {
			return nil, err
		}
		return c, nil
	case e.APICall != nil && e.APICall.Service != nil:
		c.Unsupported = "apiCall service"
	case e.APICall != nil && e.APICall.Method != "" && e.APICall.Method != "GET":
		c.Unsupported = "apiCall " + e.APICall.Method
	case e.APICall != nil:
		if e.APICall.URLPath == "" {
			return nil, errors.New("an apiCall needs a urlPath or a service")
		}
		var err error
		if c.urlPath, err = conditions.CompileTemplate(e.APICall.URLPath, path+".apiCall.urlPath"); err != nil {
			return nil, err
		}
		if e.APICall.JMESPath != "" {
			if c.callJMESPath, err = compileExpressionTemplate(e.APICall.JMESPath, path+".apiCall.jmesPath"); err != nil {
				return nil, err
			}
		}
		return c, nil
	case e.ImageRegistry != nil:
		var err error
		if c.imageRef, err = conditions.CompileTemplate(e.ImageRegistry.Reference, path+".imageRegistry.reference"); err != nil {
			return nil, err
		}
		if e.ImageRegistry.JMESPath != "" {
			if c.imageJMESPath, err = compileExpressionTemplate(e.ImageRegistry.JMESPath, path+".imageRegistry.jmesPath"); err != nil {
				return nil, err
			}
		}
		c.imageCredentials = e.ImageRegistry.ImageRegistryCredentials
		return c, nil
	case e.GlobalReference != nil:
		c.Unsupported = "globalReference"
	case e.Variable == nil:
		return nil, errors.New("exactly one of configMap or apiCall or imageRegistry or variable or globalReference is required for context entries")
	}
	if c.Unsupported != "" {
		return c, nil
	}
	var err error
	if e.Variable.Value != nil {
		if c.value, err = conditions.CompileValue(e.Variable.Value, path+".variable.value"); err != nil {
			return nil, err
		}
	}
	if e.Variable.JMESPath != "" {
		if c.jmesPath, err = compileExpressionTemplate(e.Variable.JMESPath, path+".variable.jmesPath"); err != nil {
			return nil, err
		}
	}
	if e.Variable.Default != nil {
		if c.def, err = conditions.CompileValue(e.Variable.Default, path+".variable.default"); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// Load evaluates the entry against doc and sets doc[Name]. A variable entry loads as Kyverno's
// variable loader does: the default and the value have their variables substituted; jmesPath
// (after substitution) is applied to the value, or without a value to the whole context; the
// default stands in when the expression fails (or, without a value, yields null); a result
// that is null is an error. A configMap entry (name and namespace substituted; the namespace
// defaults to the Policy's own, or "default" for a ClusterPolicy, and a namespaced Policy may
// read its own namespace only) is the ConfigMap's data and metadata. Errors name the entry.
func (c *ContextEntry) Load(ctx context.Context, doc map[string]any, loaders Loaders) error {
	if c.Unsupported != "" {
		return c.unsupportedError()
	}
	var out any
	var err error
	switch {
	case c.cmName != nil:
		out, err = c.configMap(ctx, doc, loaders)
	case c.urlPath != nil:
		out, err = c.apiCall(ctx, doc, loaders)
	case c.imageRef != nil:
		out, err = c.imageData(ctx, doc, loaders)
	default:
		out, err = c.evaluate(doc)
		if err == nil && out == nil {
			return fmt.Errorf("failed to add context entry for variable %s since it evaluated to nil", c.Name)
		}
	}
	if err != nil {
		return fmt.Errorf("context entry %q: %w", c.Name, err)
	}
	b, err := json.Marshal(out)
	if err != nil {
		return fmt.Errorf("context entry %q: %w", c.Name, err)
	}
	if len(b) > maxContextBytes {
		return fmt.Errorf("context entry %q: its value is %d bytes, more than the limit of %d", c.Name, len(b), maxContextBytes)
	}
	doc[c.Name] = out
	return nil
}

func (c *ContextEntry) evaluate(doc map[string]any) (any, error) {
	path := ""
	if c.jmesPath != nil {
		p, err := c.jmesPath.Render(doc)
		if err != nil {
			return nil, err
		}
		s, ok := p.(string)
		if !ok {
			return nil, fmt.Errorf("%s.variable.jmesPath: the expression did not resolve to a string", c.Path)
		}
		path = s
	}
	var def any
	if c.def != nil {
		var err error
		if def, err = c.def.Render(doc); err != nil {
			return nil, err
		}
	}
	if c.value != nil {
		val, err := c.value.Render(doc)
		if err != nil {
			return nil, err
		}
		if path == "" {
			return val, nil
		}
		out, err := conditions.Query(path, val)
		if err != nil {
			if def != nil {
				return def, nil
			}
			return nil, fmt.Errorf("failed to apply jmespath %s to the value: %w", path, err)
		}
		return out, nil
	}
	if path == "" {
		return def, nil
	}
	out, err := conditions.Query(path, doc)
	switch {
	case err != nil && def == nil:
		return nil, fmt.Errorf("failed to apply jmespath %s: %w", path, err)
	case err != nil || out == nil:
		return def, nil
	}
	return out, nil
}

func (c *ContextEntry) unsupportedError() error {
	return fmt.Errorf("context entry %q: %s entries are not supported yet", c.Name, c.Unsupported)
}

func (c *ContextEntry) configMap(ctx context.Context, doc map[string]any, loaders Loaders) (any, error) {
	name, err := c.cmName.RenderString(doc)
	if err != nil {
		return nil, err
	}
	namespace, err := c.cmNamespace.RenderString(doc)
	if err != nil {
		return nil, err
	}
	if namespace == "" {
		namespace = c.policyNamespace
		if namespace == "" {
			namespace = "default"
		}
	}
	if c.policyNamespace != "" && namespace != c.policyNamespace {
		return nil, fmt.Errorf("configMap namespace %q is different from policy namespace %q", namespace, c.policyNamespace)
	}
	if loaders.ConfigMap == nil {
		return nil, errors.New("configMap entries need the Kubernetes API (vouch serve) or the ConfigMap among the resources (vouch apply)")
	}
	cm, err := loaders.ConfigMap(ctx, namespace, name)
	if err != nil {
		return nil, fmt.Errorf("failed to get configmap %s/%s: %w", namespace, name, err)
	}
	return cm, nil
}

func (c *ContextEntry) apiCall(ctx context.Context, doc map[string]any, loaders Loaders) (any, error) {
	p, err := c.urlPath.RenderString(doc)
	if err != nil {
		return nil, err
	}
	clean, err := apiPath(p, c.policyNamespace)
	if err != nil {
		return nil, err
	}
	if loaders.APICall == nil {
		return nil, errors.New("apiCall entries need the Kubernetes API (vouch serve)")
	}
	data, err := loaders.APICall(ctx, clean)
	if err != nil {
		return nil, fmt.Errorf("failed to GET resource with raw url: %s: %w", clean, err)
	}
	if c.callJMESPath == nil {
		return data, nil
	}
	expr, err := c.callJMESPath.RenderString(doc)
	if err != nil {
		return nil, err
	}
	out, err := conditions.Query(expr, data)
	if err != nil {
		return nil, fmt.Errorf("failed to apply JMESPath %s: %w", expr, err)
	}
	return out, nil
}

// apiPath checks an apiCall urlPath and returns it cleaned: an absolute path of the Kubernetes
// API (/api/... or /apis/...), and for a namespaced Policy one inside its own namespace (as
// Kyverno since CVE-2026-22039: a Policy may not read other namespaces through vouch's
// credentials).
func apiPath(p, policyNamespace string) (string, error) {
	raw, query, _ := strings.Cut(p, "?")
	clean := path.Clean("/" + raw)
	if clean != "/api" && clean != "/apis" && !strings.HasPrefix(clean, "/api/") && !strings.HasPrefix(clean, "/apis/") {
		return "", fmt.Errorf("apiCall urlPath %q is not a Kubernetes API path (/api/... or /apis/...)", p)
	}
	if policyNamespace != "" && !inNamespace(clean, policyNamespace) {
		return "", fmt.Errorf("apiCall urlPath %q is outside the policy namespace %q", p, policyNamespace)
	}
	if readsSecrets(clean) {
		// vouch can read the registry credentials of its own namespace: never on a
		// policy's behalf, where they could end up in messages and reports.
		return "", fmt.Errorf("apiCall urlPath %q reads Secrets, which vouch does not read for policies", p)
	}
	if query != "" {
		clean += "?" + query
	}
	return clean, nil
}

// inNamespace reports whether a cleaned API path names the namespace or something in it:
// /api/v1/namespaces/<ns>[/...] or /apis/<group>/<version>/namespaces/<ns>[/...].
func inNamespace(p, ns string) bool {
	parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
	switch {
	case len(parts) >= 4 && parts[0] == "api" && parts[2] == "namespaces":
		return parts[3] == ns
	case len(parts) >= 5 && parts[0] == "apis" && parts[3] == "namespaces":
		return parts[4] == ns
	}
	return false
}

// readsSecrets reports whether a cleaned core API path names Secrets: /api/v1/secrets or
// /api/v1/namespaces/<ns>/secrets[/...].
func readsSecrets(p string) bool {
	parts := strings.Split(strings.TrimPrefix(p, "/"), "/")
	switch {
	case len(parts) >= 3 && parts[0] == "api" && parts[2] == "secrets":
		return true
	case len(parts) >= 5 && parts[0] == "api" && parts[2] == "namespaces" && parts[4] == "secrets":
		return true
	}
	return false
}

func (c *ContextEntry) imageData(ctx context.Context, doc map[string]any, loaders Loaders) (any, error) {
	ref, err := c.imageRef.RenderString(doc)
	if err != nil {
		return nil, err
	}
	if loaders.ImageData == nil {
		return nil, errors.New("imageRegistry entries need a registry client")
	}
	data, err := loaders.ImageData(ctx, ref, c.imageCredentials)
	if err != nil {
		return nil, fmt.Errorf("failed to fetch image data %s: %w", ref, err)
	}
	if c.imageJMESPath == nil {
		return data, nil
	}
	expr, err := c.imageJMESPath.RenderString(doc)
	if err != nil {
		return nil, err
	}
	out, err := conditions.Query(expr, data)
	if err != nil {
		return nil, fmt.Errorf("failed to apply JMESPath (%s) results: %w", expr, err)
	}
	return out, nil
}

// compileExpressionTemplate compiles a jmesPath field: a template whose variables are
// substituted first; when it has none, the expression itself is checked now, so that a policy
// with an invalid expression is refused when it is loaded rather than at every admission.
func compileExpressionTemplate(expr, path string) (*conditions.Template, error) {
	t, err := conditions.CompileTemplate(expr, path)
	if err != nil {
		return nil, err
	}
	if !v1.HasVariables(expr) {
		if err := conditions.CheckExpression(expr); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	return t, nil
}
