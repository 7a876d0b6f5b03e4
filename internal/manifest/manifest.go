package manifest

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

// MaxFileSize caps the size of one manifest file.
const MaxFileSize = 64 << 20

// Document is one YAML or JSON document read from a file.
type Document struct {
	Source string // file path as given (or found in a directory)
	Index  int    // 1-based position of the document in its file
	Line   int    // 1-based line where the document starts
	Item   int    // index in a v1 List's items, or -1
	JSON   []byte // the document as JSON
}

// Location names the document for error messages: "pol.yaml (document 2, line 14)".
func (d Document) Location() string {
	s := fmt.Sprintf("%s (document %d, line %d", d.Source, d.Index, d.Line)
	if d.Item >= 0 {
		s += fmt.Sprintf(", items[%d]", d.Item)
	}
	return s + ")"
}

// Error is a problem with one document or file.
type Error struct {
	Location string
	Err      error
}

// Error returns "<location>: <cause>".
func (e *Error) Error() string { return e.Location + ": " + e.Err.Error() }

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// ReadPaths reads every document of the given files and directories. Directories are walked
// recursively for *.yaml, *.yml and *.json files, in lexical order. A path that does not exist,
// an unreadable file or a document that is not valid YAML is an error naming the file.
func ReadPaths(paths []string) ([]Document, error) {
	var docs []Document
	for _, p := range paths {
		files, err := expand(p)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			data, err := readFile(f)
			if err != nil {
				return nil, err
			}
			d, err := Split(f, data)
			if err != nil {
				return nil, err
			}
			docs = append(docs, d...)
		}
	}
	return docs, nil
}

func expand(p string) ([]string, error) {
	info, err := os.Stat(p)
	if err != nil {
		return nil, &Error{Location: p, Err: fmt.Errorf("reading: %w", err)}
	}
	if !info.IsDir() {
		return []string{p}, nil
	}
	var files []string
	err = filepath.WalkDir(p, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		switch strings.ToLower(filepath.Ext(path)) {
		case ".yaml", ".yml", ".json":
			if !d.IsDir() {
				files = append(files, path)
			}
		}
		return nil
	})
	if err != nil {
		return nil, &Error{Location: p, Err: fmt.Errorf("walking directory: %w", err)}
	}
	sort.Strings(files)
	if len(files) == 0 {
		return nil, &Error{Location: p, Err: fmt.Errorf("directory holds no .yaml, .yml or .json file")}
	}
	return files, nil
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &Error{Location: path, Err: fmt.Errorf("reading: %w", err)}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, &Error{Location: path, Err: fmt.Errorf("reading: %w", err)}
	}
	if len(data) > MaxFileSize {
		return nil, &Error{Location: path, Err: fmt.Errorf("file is larger than %d bytes", MaxFileSize)}
	}
	return data, nil
}

// Split cuts data into documents at YAML "---" separator lines and converts each to JSON.
// Documents that are empty (only comments or whitespace) are dropped but still counted, so
// indices match what an editor shows. A v1 List is expanded into its items.
func Split(source string, data []byte) ([]Document, error) {
	var docs []Document
	var cur bytes.Buffer
	index, start, line := 1, 1, 0
	flush := func() error {
		d, err := convert(source, index, start, cur.Bytes())
		if err != nil {
			return err
		}
		docs = append(docs, d...)
		cur.Reset()
		return nil
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), MaxFileSize)
	for sc.Scan() {
		line++
		text := sc.Text()
		if isSeparator(text) {
			if err := flush(); err != nil {
				return nil, err
			}
			index++
			start = line + 1
			continue
		}
		cur.WriteString(text)
		cur.WriteByte('\n')
	}
	if err := sc.Err(); err != nil {
		return nil, &Error{Location: source, Err: fmt.Errorf("reading: %w", err)}
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return docs, nil
}

func isSeparator(line string) bool {
	if !strings.HasPrefix(line, "---") {
		return false
	}
	rest := strings.TrimSpace(line[3:])
	return rest == "" || strings.HasPrefix(rest, "#")
}

func convert(source string, index, line int, y []byte) ([]Document, error) {
	loc := Document{Source: source, Index: index, Line: line, Item: -1}
	if len(bytes.TrimSpace(stripComments(y))) == 0 {
		return nil, nil
	}
	j, err := yaml.YAMLToJSONStrict(y)
	if err != nil {
		return nil, &Error{Location: loc.Location(), Err: fmt.Errorf("invalid YAML: %w", err)}
	}
	if string(j) == "null" {
		return nil, nil
	}
	var head struct {
		APIVersion string            `json:"apiVersion"`
		Kind       string            `json:"kind"`
		Items      []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(j, &head); err != nil || !bytes.HasPrefix(bytes.TrimSpace(j), []byte("{")) {
		return nil, &Error{Location: loc.Location(), Err: fmt.Errorf("document is not a YAML mapping with apiVersion and kind")}
	}
	if head.APIVersion == "v1" && head.Kind == "List" {
		docs := make([]Document, 0, len(head.Items))
		for i, item := range head.Items {
			d := loc
			d.Item, d.JSON = i, item
			docs = append(docs, d)
		}
		return docs, nil
	}
	loc.JSON = j
	return []Document{loc}, nil
}

func stripComments(y []byte) []byte {
	var out bytes.Buffer
	for _, l := range bytes.Split(y, []byte("\n")) {
		if t := bytes.TrimSpace(l); len(t) > 0 && t[0] != '#' {
			out.Write(l)
			out.WriteByte('\n')
		}
	}
	return out.Bytes()
}

// Object is a Kubernetes object read from a manifest.
type Object struct {
	Doc   Document
	Value map[string]any
}

// Objects decodes documents as Kubernetes objects. Each must have apiVersion, kind and
// metadata.name (or generateName); otherwise the error names the document.
func Objects(docs []Document) ([]Object, error) {
	out := make([]Object, 0, len(docs))
	for _, d := range docs {
		var v map[string]any
		if err := json.Unmarshal(d.JSON, &v); err != nil {
			return nil, &Error{Location: d.Location(), Err: fmt.Errorf("decoding: %w", err)}
		}
		meta, _ := v["metadata"].(map[string]any)
		name, _ := meta["name"].(string)
		generateName, _ := meta["generateName"].(string)
		for _, f := range []struct {
			name string
			ok   bool
		}{
			{"apiVersion", v["apiVersion"] != nil && v["apiVersion"] != ""},
			{"kind", v["kind"] != nil && v["kind"] != ""},
			{"metadata.name", name != "" || generateName != ""},
		} {
			if !f.ok {
				return nil, &Error{Location: d.Location(), Err: fmt.Errorf("%s: Required value: a Kubernetes object needs apiVersion, kind and metadata.name", f.name)}
			}
		}
		if _, ok := v["apiVersion"].(string); !ok {
			return nil, &Error{Location: d.Location(), Err: fmt.Errorf("apiVersion: must be a string")}
		}
		if _, ok := v["kind"].(string); !ok {
			return nil, &Error{Location: d.Location(), Err: fmt.Errorf("kind: must be a string")}
		}
		out = append(out, Object{Doc: d, Value: v})
	}
	return out, nil
}

// NamespaceLabels returns the labels of every v1 Namespace among the objects, by name.
func NamespaceLabels(objs []Object) map[string]map[string]string {
	out := map[string]map[string]string{}
	for _, o := range objs {
		if o.Value["apiVersion"] != "v1" || o.Value["kind"] != "Namespace" {
			continue
		}
		meta, _ := o.Value["metadata"].(map[string]any)
		name, _ := meta["name"].(string)
		labels := map[string]string{}
		if l, ok := meta["labels"].(map[string]any); ok {
			for k, v := range l {
				if s, ok := v.(string); ok {
					labels[k] = s
				}
			}
		}
		out[name] = labels
	}
	return out
}

// ConfigMaps returns the ConfigMaps among the objects as rule context values (Kyverno's
// configMap context entry: {"data": ..., "metadata": ...}), keyed by "<namespace>/<name>"
// (a ConfigMap without a namespace is in "default").
func ConfigMaps(objs []Object) map[string]map[string]any {
	out := map[string]map[string]any{}
	for _, o := range objs {
		if o.Value["apiVersion"] != "v1" || o.Value["kind"] != "ConfigMap" {
			continue
		}
		meta, _ := o.Value["metadata"].(map[string]any)
		data, _ := o.Value["data"].(map[string]any)
		if data == nil {
			data = map[string]any{}
		}
		out[namespacedName(meta)] = map[string]any{"data": data, "metadata": meta}
	}
	return out
}

// SecretData returns the value of one data key (decoded) of each Secret among the objects that
// holds it, in data or stringData (stringData wins, as the API server merges it), keyed by
// "<namespace>/<name>" (a Secret without a namespace is in "default"). A data value that is not
// base64 is an error naming the document and the field.
func SecretData(objs []Object, key string) (map[string]string, error) {
	out := map[string]string{}
	for _, o := range objs {
		if o.Value["apiVersion"] != "v1" || o.Value["kind"] != "Secret" {
			continue
		}
		meta, _ := o.Value["metadata"].(map[string]any)
		ref := namespacedName(meta)
		if sd, _ := o.Value["stringData"].(map[string]any); sd[key] != nil {
			s, ok := sd[key].(string)
			if !ok {
				return nil, &Error{Location: o.Doc.Location(), Err: fmt.Errorf("stringData[%q]: want a string", key)}
			}
			out[ref] = s
			continue
		}
		data, _ := o.Value["data"].(map[string]any)
		if data[key] == nil {
			continue
		}
		s, ok := data[key].(string)
		if !ok {
			return nil, &Error{Location: o.Doc.Location(), Err: fmt.Errorf("data[%q]: want a base64 string", key)}
		}
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			return nil, &Error{Location: o.Doc.Location(), Err: fmt.Errorf("data[%q]: not base64: %w", key, err)}
		}
		out[ref] = string(b)
	}
	return out, nil
}

// namespacedName is "<namespace>/<name>" of an object's metadata; an object without a namespace
// is in "default".
func namespacedName(meta map[string]any) string {
	name, _ := meta["name"].(string)
	ns, _ := meta["namespace"].(string)
	if ns == "" {
		ns = "default"
	}
	return ns + "/" + name
}
