package session

import (
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/glintdev/glint/result"
	"gopkg.in/yaml.v3"
)

// openAPIDoc is the part of docs/openapi.yaml the test reads.
type openAPIDoc struct {
	OpenAPI    string                                `yaml:"openapi"`
	Paths      map[string]map[string]yaml.Node       `yaml:"paths"`
	Components struct{ Schemas map[string]oaSchema } `yaml:"components"`
}

type oaSchema struct {
	Properties map[string]yaml.Node `yaml:"properties"`
	Required   []string             `yaml:"required"`
}

func loadOpenAPI(t *testing.T) (openAPIDoc, *yaml.Node) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "docs", "openapi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc openAPIDoc
	if err := yaml.Unmarshal(b, &doc); err != nil {
		t.Fatalf("docs/openapi.yaml: %v", err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		t.Fatal(err)
	}
	return doc, &root
}

// TestOpenAPIRoutes: every route the API serves (with every optional part
// configured) is in docs/openapi.yaml, and every documented operation is
// served.
func TestOpenAPIRoutes(t *testing.T) {
	doc, _ := loadOpenAPI(t)
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi %q, want 3.1.0", doc.OpenAPI)
	}
	var documented []string
	for path, item := range doc.Paths {
		for method, op := range item {
			switch method {
			case "get", "put", "post", "delete", "patch", "head", "options", "trace":
			default:
				continue // parameters, summary …
			}
			documented = append(documented, strings.ToUpper(method)+" "+path)
			var o struct {
				OperationID string               `yaml:"operationId"`
				Responses   map[string]yaml.Node `yaml:"responses"`
			}
			if err := op.Decode(&o); err != nil {
				t.Fatalf("%s %s: %v", method, path, err)
			}
			if o.OperationID == "" || len(o.Responses) == 0 {
				t.Errorf("%s %s: no operationId or responses", method, path)
			}
		}
	}
	a := newTestAPI(t, APIConfig{SocketPath: "unused", Camera: &fakeCamera{}, Sessions: newFakeSessions(), Enrolments: fakeStore{}, SimControl: &fakeSim{}})
	served := a.Routes()
	sort.Strings(documented)
	sort.Strings(served)
	for _, r := range served {
		if !slices.Contains(documented, r) {
			t.Errorf("served but not in docs/openapi.yaml: %s", r)
		}
	}
	for _, r := range documented {
		if !slices.Contains(served, r) {
			t.Errorf("in docs/openapi.yaml but not served: %s", r)
		}
	}
	if len(served) < 12 {
		t.Errorf("only %d routes served: %v", len(served), served)
	}
}

// TestOpenAPIRefs: every $ref points at something defined.
func TestOpenAPIRefs(t *testing.T) {
	_, root := loadOpenAPI(t)
	var walk func(n *yaml.Node)
	n := 0
	walk = func(node *yaml.Node) {
		if node.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(node.Content); i += 2 {
				if node.Content[i].Value == "$ref" {
					n++
					ref := node.Content[i+1].Value
					if !resolves(root, ref) {
						t.Errorf("line %d: $ref %q does not resolve", node.Content[i+1].Line, ref)
					}
				}
			}
		}
		for _, c := range node.Content {
			walk(c)
		}
	}
	walk(root)
	if n < 20 {
		t.Errorf("only %d $refs found: parsing went wrong", n)
	}
}

func resolves(root *yaml.Node, ref string) bool {
	p, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return false
	}
	node := root.Content[0]
	for _, key := range strings.Split(p, "/") {
		if node.Kind != yaml.MappingNode {
			return false
		}
		var next *yaml.Node
		for i := 0; i+1 < len(node.Content); i += 2 {
			if node.Content[i].Value == key {
				next = node.Content[i+1]
			}
		}
		if next == nil {
			return false
		}
		node = next
	}
	return true
}

// TestOpenAPISchemas: the documented schemas have exactly the JSON fields
// of the Go types the API encodes and decodes.
func TestOpenAPISchemas(t *testing.T) {
	doc, _ := loadOpenAPI(t)
	for name, v := range map[string]any{
		"Error": APIError{}, "SessionRequest": Request{}, "StartRequest": startBody{}, "Ticket": Ticket{},
		"Session": Info{}, "Verdict": Verdict{}, "Event": Event{}, "Enrolment": Enrolment{},
		"Scores": result.Scores{}, "Flashmark": result.Flashmark{}, "SimPresentation": simPresentation{},
		"Health": Health{},
	} {
		s, ok := doc.Components.Schemas[name]
		if !ok {
			t.Errorf("schema %s missing", name)
			continue
		}
		var want []string
		rt := reflect.TypeOf(v)
		for i := range rt.NumField() {
			tag := strings.Split(rt.Field(i).Tag.Get("json"), ",")[0]
			if tag != "" && tag != "-" {
				want = append(want, tag)
			}
		}
		var got []string
		for k := range s.Properties {
			got = append(got, k)
		}
		sort.Strings(want)
		sort.Strings(got)
		if !slices.Equal(got, want) {
			t.Errorf("schema %s has %v, the Go type %T has %v", name, got, v, want)
		}
		for _, r := range s.Required {
			if !slices.Contains(want, r) {
				t.Errorf("schema %s requires unknown %q", name, r)
			}
		}
	}
}

// fakeStore is an EnrolmentStore for route listing only.
type fakeStore struct{ EnrolmentStore }
