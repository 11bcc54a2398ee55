package config

import (
	"encoding"
	"fmt"
	"io"
	"reflect"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Field describes one configuration key, for documentation.
type Field struct {
	// Key is the dotted path, e.g. "camera.fps".
	Key string
	// Depth is the nesting level: 0 for top-level keys.
	Depth int
	// Section is true for a block of keys (a nested struct).
	Section bool
	// Type is a short type name: string, int, float, bool, duration, list of …
	Type string
	// Default is the default rendered as YAML ("" for sections).
	Default string
	// Env is the overriding environment variable ("" for sections).
	Env string
	// Allowed summarises the enum or range tags, e.g. "auto | json | text".
	Allowed string
	// Doc is the one-line description from the `doc` tag.
	Doc string
}

// Describe lists every key of the configuration struct defaults (a struct
// or a pointer to one) in declaration order, sections before their keys.
func Describe(defaults any, envPrefix string) []Field {
	v := reflect.ValueOf(defaults)
	for v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	if v.Kind() != reflect.Struct {
		return nil
	}
	var out []Field
	describe(v, "", 0, envPrefix, &out)
	return out
}

func describe(v reflect.Value, prefix string, depth int, envPrefix string, out *[]Field) {
	for _, f := range fields(v.Type()) {
		fv := v.FieldByIndex(f.Index)
		key := join(prefix, f.name)
		d := Field{Key: key, Depth: depth, Doc: f.Tag.Get("doc")}
		if isSection(f.Type) {
			d.Section = true
			*out = append(*out, d)
			describe(fv, key, depth+1, envPrefix, out)
			continue
		}
		d.Type = typeName(f.Type)
		d.Default = render(fv)
		if envPrefix != "" {
			d.Env = EnvName(envPrefix, key)
		}
		d.Allowed = allowed(f.StructField)
		*out = append(*out, d)
	}
}

func allowed(sf reflect.StructField) string {
	if e, ok := sf.Tag.Lookup("enum"); ok {
		return strings.Join(strings.Split(e, "|"), " | ")
	}
	lo, hasMin := sf.Tag.Lookup("min")
	hi, hasMax := sf.Tag.Lookup("max")
	switch {
	case hasMin && hasMax:
		return lo + " … " + hi
	case hasMin:
		return "≥ " + lo
	case hasMax:
		return "≤ " + hi
	}
	return ""
}

func typeName(t reflect.Type) string {
	if t == durationType {
		return "duration"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "bool"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "int"
	case reflect.Float32, reflect.Float64:
		return "float"
	case reflect.Slice:
		return "list of " + typeName(t.Elem())
	case reflect.Map:
		return "map of " + typeName(t.Key()) + " to " + typeName(t.Elem())
	}
	return "string"
}

// render formats a value the way it would be written in the YAML file.
func render(v reflect.Value) string {
	if v.Type() == durationType {
		return time.Duration(v.Int()).String()
	}
	if v.Type().Implements(textMarshalerType) {
		if b, err := v.Interface().(encoding.TextMarshaler).MarshalText(); err == nil {
			return yamlString(string(b))
		}
	}
	switch v.Kind() {
	case reflect.String:
		return yamlString(v.String())
	case reflect.Slice:
		parts := make([]string, v.Len())
		for i := range parts {
			parts[i] = render(v.Index(i))
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case reflect.Map:
		keys := v.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return fmt.Sprint(keys[i].Interface()) < fmt.Sprint(keys[j].Interface()) })
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = render(k) + ": " + render(v.MapIndex(k))
		}
		return "{" + strings.Join(parts, ", ") + "}"
	case reflect.Float32, reflect.Float64:
		return fmt.Sprintf("%g", v.Float())
	}
	return fmt.Sprint(v.Interface())
}

// yamlString quotes s only when YAML needs it ("", "on", "1", ": x", …).
func yamlString(s string) string {
	if s == "" {
		return `""`
	}
	b, err := yaml.Marshal(s)
	if err != nil {
		return fmt.Sprintf("%q", s)
	}
	return strings.TrimSuffix(string(b), "\n")
}

// WriteYAML prints every key with its default as a commented YAML
// document, usable as a starting configuration file.
func WriteYAML(w io.Writer, defaults any, envPrefix string) error {
	var b strings.Builder
	prevDepth := 0
	for i, f := range Describe(defaults, envPrefix) {
		ind := strings.Repeat("  ", f.Depth)
		// A blank line before each section and after a section ends.
		if i > 0 && (f.Section || f.Depth < prevDepth) {
			b.WriteString("\n")
		}
		prevDepth = f.Depth
		comment := f.Doc
		if f.Allowed != "" {
			comment += " [" + f.Allowed + "]"
		}
		if f.Env != "" {
			comment += " (env " + f.Env + ")"
		}
		if comment != "" {
			fmt.Fprintf(&b, "%s# %s\n", ind, strings.TrimSpace(comment))
		}
		name := f.Key[strings.LastIndex(f.Key, ".")+1:]
		if f.Section {
			fmt.Fprintf(&b, "%s%s:\n", ind, name)
		} else {
			fmt.Fprintf(&b, "%s%s: %s\n", ind, name, f.Default)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteMarkdown prints every key as Markdown tables (top-level keys first,
// then one table per top-level section) with default, allowed values,
// environment variable and description.
func WriteMarkdown(w io.Writer, defaults any, envPrefix string) error {
	var top, rest strings.Builder
	header := func(b *strings.Builder) {
		b.WriteString("| key | default | allowed | environment | description |\n")
		b.WriteString("|---|---|---|---|---|\n")
	}
	for _, f := range Describe(defaults, envPrefix) {
		switch {
		case f.Section && f.Depth == 0:
			fmt.Fprintf(&rest, "\n## `%s`\n\n%s\n\n", f.Key, f.Doc)
			header(&rest)
		case f.Section:
			fmt.Fprintf(&rest, "| `%s` | | | | %s |\n", f.Key, mdEscape(f.Doc))
		case f.Depth == 0:
			if top.Len() == 0 {
				top.WriteString("\n## Top-level keys\n\n")
				header(&top)
			}
			mdRow(&top, f)
		default:
			mdRow(&rest, f)
		}
	}
	_, err := io.WriteString(w, top.String()+rest.String())
	return err
}

func mdRow(b *strings.Builder, f Field) {
	fmt.Fprintf(b, "| `%s` | `%s` | %s | `%s` | %s |\n",
		f.Key, f.Default, mdEscape(f.Allowed), f.Env, mdEscape(f.Doc))
}

func mdEscape(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
