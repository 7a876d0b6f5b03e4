package report

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"

	"sigs.k8s.io/yaml"

	"github.com/vouchproject/vouch/internal/engine"
)

// Report is the output of `vouch apply` (DESIGN §4).
type Report struct {
	Summary   Summary          `json:"summary"`
	Results   []Result         `json:"results"`
	Resources []map[string]any `json:"resources"`
}

// Summary counts results by outcome.
type Summary struct {
	Pass  int `json:"pass"`
	Fail  int `json:"fail"`
	Warn  int `json:"warn"`
	Error int `json:"error"`
	Skip  int `json:"skip"`
}

// Result is the outcome of one rule of one policy for one resource.
type Result struct {
	Policy    string            `json:"policy"`
	Rule      string            `json:"rule"`
	Result    string            `json:"result"`
	Message   string            `json:"message"`
	Resources []ResourceRef     `json:"resources"`
	Images    map[string]string `json:"images"`
}

// ResourceRef identifies a resource.
type ResourceRef struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Namespace  string `json:"namespace"`
	Name       string `json:"name"`
}

// New returns an empty report (with non-nil lists, so JSON shows [] rather than null).
func New() *Report {
	return &Report{Results: []Result{}, Resources: []map[string]any{}}
}

// Add records the engine's response for one resource.
func (r *Report) Add(resp *engine.Response) {
	ref := refOf(resp.Object)
	for _, rr := range resp.Results {
		res := Result{
			Policy:    rr.Policy.ReportName(),
			Rule:      rr.Rule.Name,
			Result:    string(rr.Status),
			Message:   rr.Message,
			Resources: []ResourceRef{ref},
			Images:    map[string]string{},
		}
		for _, im := range rr.Images {
			for _, w := range im.Written {
				res.Images[w] = imageStatus(im.Status)
			}
		}
		r.Results = append(r.Results, res)
		r.count(rr.Status)
	}
	r.Resources = append(r.Resources, resp.Object)
}

// imageStatus maps an image outcome to the annotation vocabulary pass|fail|skip.
func imageStatus(s engine.Status) string {
	switch s {
	case engine.Pass:
		return "pass"
	case engine.Skip:
		return "skip"
	default:
		return "fail"
	}
}

func (r *Report) count(s engine.Status) {
	switch s {
	case engine.Pass:
		r.Summary.Pass++
	case engine.Fail:
		r.Summary.Fail++
	case engine.Warn:
		r.Summary.Warn++
	case engine.Error:
		r.Summary.Error++
	case engine.Skip:
		r.Summary.Skip++
	}
}

// Failed reports whether any result is fail or error (exit code 1).
func (r *Report) Failed() bool { return r.Summary.Fail > 0 || r.Summary.Error > 0 }

func refOf(obj map[string]any) ResourceRef {
	meta, _ := obj["metadata"].(map[string]any)
	ref := ResourceRef{}
	ref.APIVersion, _ = obj["apiVersion"].(string)
	ref.Kind, _ = obj["kind"].(string)
	ref.Namespace, _ = meta["namespace"].(string)
	ref.Name, _ = meta["name"].(string)
	return ref
}

// WriteJSON writes the report as one JSON object.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteYAML writes the summary and results as one YAML document, then every resource (after
// mutation) as its own document, ready for kubectl.
func (r *Report) WriteYAML(w io.Writer) error {
	head, err := yaml.Marshal(struct {
		Summary Summary  `json:"summary"`
		Results []Result `json:"results"`
	}{r.Summary, r.Results})
	if err != nil {
		return err
	}
	if _, err := w.Write(head); err != nil {
		return err
	}
	for _, res := range r.Resources {
		doc, err := yaml.Marshal(res)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(w, "---\n%s", doc); err != nil {
			return err
		}
	}
	return nil
}

// WriteTable writes one aligned line per result and a summary line. color adds ANSI colours
// to the result column (use it only on a terminal).
func (r *Report) WriteTable(w io.Writer, color bool) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "POLICY\tRULE\tRESOURCE\tRESULT\tMESSAGE")
	for _, res := range r.Results {
		result := res.Result
		if color {
			result = paint(result)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", res.Policy, res.Rule, resourceName(res.Resources), result, oneLine(res.Message))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	s := r.Summary
	_, err := fmt.Fprintf(w, "\npass: %d, fail: %d, warn: %d, error: %d, skip: %d\n", s.Pass, s.Fail, s.Warn, s.Error, s.Skip)
	return err
}

func resourceName(refs []ResourceRef) string {
	names := make([]string, len(refs))
	for i, ref := range refs {
		if ref.Namespace != "" {
			names[i] = ref.Kind + "/" + ref.Namespace + "/" + ref.Name
		} else {
			names[i] = ref.Kind + "/" + ref.Name
		}
	}
	sort.Strings(names)
	return strings.Join(names, ",")
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// paint colours a result with ANSI codes: tabwriter counts the escape bytes, but every row
// carries the same number of them, so columns stay aligned.
func paint(result string) string {
	code := map[string]string{"pass": "32", "fail": "31", "warn": "33", "error": "35", "skip": "90"}[result]
	if code == "" {
		code = "0"
	}
	return "\x1b[" + code + "m" + result + "\x1b[0m"
}
