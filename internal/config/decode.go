package config

import (
	"bytes"
	"encoding"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Limits on the node walk: aliases can make a small document expand
// exponentially, and the walk must stay cheap on hostile input.
const (
	maxNodes = 100000
	maxDepth = 64
)

var (
	durationType        = reflect.TypeOf(time.Duration(0))
	textUnmarshalerType = reflect.TypeOf((*encoding.TextUnmarshaler)(nil)).Elem()
	textMarshalerType   = reflect.TypeOf((*encoding.TextMarshaler)(nil)).Elem()
	// yaml.v3 prefixes positions as "line N: " (and syntax errors with "yaml: ").
	lineRE = regexp.MustCompile(`^(?:yaml: )?line (\d+): `)
)

// parser holds one Parse call's state: where each key was found, which keys
// came from the environment, and the errors so far.
type parser struct {
	file   string
	lines  map[string]int    // dotted key → line of the key in the file
	byLine map[int]string    // line → first key on it, to locate decoder errors
	env    map[string]string // dotted key → environment variable that set it
	nodes  int
	errs   Errors
}

func newParser(file string) *parser {
	return &parser{
		file:   file,
		lines:  map[string]int{},
		byLine: map[int]string{},
		env:    map[string]string{},
	}
}

// errAt records an error located at a line of the file.
func (p *parser) errAt(line int, key, format string, args ...any) {
	p.errs = append(p.errs, &Error{File: p.file, Line: line, Key: key, Msg: fmt.Sprintf(format, args...)})
}

// errKey records an error about key, located where its value came from: the
// environment variable, its line, or the nearest enclosing section's line.
func (p *parser) errKey(key, format string, args ...any) {
	e := &Error{File: p.file, Key: key, Msg: key + ": " + fmt.Sprintf(format, args...)}
	if env, ok := p.env[key]; ok {
		e.Env = env
	} else {
		e.Line = p.lineOf(key)
	}
	p.errs = append(p.errs, e)
}

func (p *parser) lineOf(key string) int {
	for key != "" {
		if l, ok := p.lines[key]; ok {
			return l
		}
		i := strings.LastIndexAny(key, ".[")
		if i < 0 {
			return 0
		}
		key = key[:i]
	}
	return 0
}

// decode parses data into out (a pointer to a struct of type t). It reports
// whether decoding succeeded; errors are in p.errs.
func (p *parser) decode(data []byte, out any, t reflect.Type) bool {
	var root yaml.Node
	if err := safeYAML(func() error { return yaml.Unmarshal(data, &root) }); err != nil {
		p.yamlError(err)
		return false
	}
	if root.Kind == 0 || len(root.Content) == 0 {
		return true // empty document: all defaults
	}
	doc := root.Content[0]
	if doc.Kind == yaml.ScalarNode && doc.Tag == "!!null" {
		return true // only comments, or "~"
	}
	if doc.Kind != yaml.MappingNode {
		p.errAt(doc.Line, "", "the document must be a mapping of keys, got %s", kindName(doc))
		return false
	}
	p.check(doc, t, "", 0)
	if len(p.errs) > 0 {
		return false
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := safeYAML(func() error { return dec.Decode(out) }); err != nil {
		p.yamlError(err)
		return false
	}
	var extra yaml.Node
	if err := safeYAML(func() error { return dec.Decode(&extra) }); !errors.Is(err, io.EOF) {
		p.errAt(extra.Line, "", "more than one YAML document; expected exactly one")
		return false
	}
	return true
}

// yamlError turns a yaml.v3 error into located Errors.
func (p *parser) yamlError(err error) {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		for _, m := range te.Errors {
			p.yamlMessage(m)
		}
		return
	}
	p.yamlMessage(err.Error())
}

func (p *parser) yamlMessage(m string) {
	line := 0
	if sm := lineRE.FindStringSubmatch(m); sm != nil {
		line, _ = strconv.Atoi(sm[1])
		m = m[len(sm[0]):]
	}
	m = strings.TrimPrefix(m, "yaml: ")
	key := p.byLine[line]
	if key != "" {
		m = key + ": " + m
	}
	p.errAt(line, key, "%s", m)
}

// safeYAML runs a yaml.v3 call and turns a panic inside the library into an
// error: the loader promises never to panic on input.
func safeYAML(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("yaml: malformed document (%v)", r)
		}
	}()
	return fn()
}

// check walks the node tree against the Go type, recording the line of
// every key and rejecting unknown keys with their full dotted path.
func (p *parser) check(n *yaml.Node, t reflect.Type, key string, depth int) {
	p.nodes++
	if p.nodes > maxNodes || depth > maxDepth {
		if p.nodes == maxNodes+1 || depth == maxDepth+1 {
			p.errAt(n.Line, key, "document too large or too deeply nested")
		}
		return
	}
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			return
		}
		n = n.Alias
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if !isSection(t) {
		if n.Kind == yaml.SequenceNode && t.Kind() == reflect.Slice {
			for i, item := range n.Content {
				k := fmt.Sprintf("%s[%d]", key, i)
				p.setLine(k, item.Line)
				p.check(item, t.Elem(), k, depth+1)
			}
		}
		return
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return // "camera:" with nothing under it keeps the defaults
	}
	if n.Kind != yaml.MappingNode {
		p.errAt(n.Line, key, "%s: must be a mapping of keys, got %s", displayKey(key), kindName(n))
		return
	}
	fields := fieldMap(t)
	for i := 0; i+1 < len(n.Content); i += 2 {
		kn, vn := n.Content[i], n.Content[i+1]
		if kn.Kind == yaml.ScalarNode && kn.Tag == "!!merge" {
			p.checkMerge(vn, t, key, depth+1)
			continue
		}
		if kn.Kind != yaml.ScalarNode {
			p.errAt(kn.Line, key, "%s: keys must be plain strings", displayKey(key))
			continue
		}
		full := join(key, kn.Value)
		f, ok := fields[kn.Value]
		if !ok {
			p.errAt(kn.Line, full, "unknown key %q", full)
			continue
		}
		p.setLine(full, kn.Line)
		p.check(vn, f.Type, full, depth+1)
	}
}

// checkMerge handles YAML merge keys ("<<: *base"), whose mappings are
// merged into the enclosing one.
func (p *parser) checkMerge(n *yaml.Node, t reflect.Type, key string, depth int) {
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind == yaml.SequenceNode {
		for _, item := range n.Content {
			p.check(item, t, key, depth+1)
		}
		return
	}
	p.check(n, t, key, depth)
}

func (p *parser) setLine(key string, line int) {
	if _, ok := p.lines[key]; !ok {
		p.lines[key] = line
	}
	if _, ok := p.byLine[line]; !ok {
		p.byLine[line] = key
	}
}

func displayKey(key string) string {
	if key == "" {
		return "document"
	}
	return key
}

func join(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "." + name
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "a list"
	case yaml.MappingNode:
		return "a mapping"
	case yaml.ScalarNode:
		return fmt.Sprintf("the value %q", n.Value)
	case yaml.AliasNode:
		return "an alias"
	}
	return "nothing"
}

// isSection reports whether t is a nested block of keys rather than a value.
func isSection(t reflect.Type) bool {
	if t.Kind() != reflect.Struct {
		return false
	}
	return !reflect.PointerTo(t).Implements(textUnmarshalerType) && t != reflect.TypeOf(time.Time{})
}

// fieldMap maps a struct's YAML key names to its fields, flattening
// `yaml:",inline"` structs the way yaml.v3 does.
func fieldMap(t reflect.Type) map[string]reflect.StructField {
	m := map[string]reflect.StructField{}
	for _, f := range fields(t) {
		m[f.name] = f.StructField
	}
	return m
}

type field struct {
	reflect.StructField
	name string
}

// fields lists a struct's configuration fields in declaration order, with
// Index paths valid on t (inline structs flattened).
func fields(t reflect.Type) []field {
	var out []field
	for i := 0; i < t.NumField(); i++ {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		tag := sf.Tag.Get("yaml")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if strings.Contains(","+opts+",", ",inline,") && sf.Type.Kind() == reflect.Struct {
			for _, inner := range fields(sf.Type) {
				inner.Index = append([]int{i}, inner.Index...)
				out = append(out, inner)
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(sf.Name) // yaml.v3's default key
		}
		out = append(out, field{StructField: sf, name: name})
	}
	return out
}
