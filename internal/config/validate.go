package config

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
)

// validate checks the `min`, `max`, `enum` and `required` tags of every
// leaf, then calls Validate on every section that has one (children first,
// so that a section's rules can assume its parts are well-formed).
func (p *parser) validate(v reflect.Value, prefix string) {
	for _, f := range fields(v.Type()) {
		fv := v.FieldByIndex(f.Index)
		key := join(prefix, f.name)
		if isSection(f.Type) {
			p.validate(fv, key)
			continue
		}
		p.checkTags(key, f.StructField, fv)
	}
	if v.CanAddr() {
		if val, ok := v.Addr().Interface().(Validator); ok {
			p.keyErrors(prefix, val.Validate())
		}
	}
}

// keyErrors records the errors a Validate method returned, resolving their
// keys relative to prefix.
func (p *parser) keyErrors(prefix string, err error) {
	if err == nil {
		return
	}
	if multi, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range multi.Unwrap() {
			p.keyErrors(prefix, e)
		}
		return
	}
	var ke *KeyError
	if errors.As(err, &ke) {
		k := ke.Key
		if strings.HasPrefix(k, "[") {
			k = prefix + k
		} else {
			k = join(prefix, k)
		}
		p.errKey(k, "%s", ke.Msg)
		return
	}
	if prefix == "" {
		p.errs = append(p.errs, &Error{File: p.file, Msg: err.Error()})
		return
	}
	p.errKey(prefix, "%v", err)
}

func (p *parser) checkTags(key string, sf reflect.StructField, v reflect.Value) {
	if sf.Tag.Get("required") == "true" && (v.IsZero() || v.Kind() == reflect.Slice && v.Len() == 0) {
		p.errKey(key, "must be set")
	}
	if enum, ok := sf.Tag.Lookup("enum"); ok {
		allowed := strings.Split(enum, "|")
		check := func(k string, s string) {
			for _, a := range allowed {
				if s == a {
					return
				}
			}
			p.errKey(k, "%q is not one of %s", s, strings.Join(allowed, ", "))
		}
		switch {
		case v.Kind() == reflect.String:
			check(key, v.String())
		case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.String:
			for i := 0; i < v.Len(); i++ {
				check(fmt.Sprintf("%s[%d]", key, i), v.Index(i).String())
			}
		}
	}
	lo, hasMin := sf.Tag.Lookup("min")
	hi, hasMax := sf.Tag.Lookup("max")
	if !hasMin && !hasMax {
		return
	}
	bound := func(s string) (reflect.Value, bool) {
		b := reflect.New(v.Type()).Elem()
		if err := setString(b, s); err != nil {
			p.errKey(key, "bad bound %q in the program's min/max tag: %v", s, err)
			return b, false
		}
		return b, true
	}
	if hasMin {
		if b, ok := bound(lo); ok && less(v, b) {
			p.errKey(key, "%s is below the minimum %s", render(v), render(b))
		}
	}
	if hasMax {
		if b, ok := bound(hi); ok && less(b, v) {
			p.errKey(key, "%s is above the maximum %s", render(v), render(b))
		}
	}
}

// less compares two numeric values of the same type.
func less(a, b reflect.Value) bool {
	switch a.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return a.Int() < b.Int()
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return a.Uint() < b.Uint()
	case reflect.Float32, reflect.Float64:
		// NaN is below every minimum and above every maximum.
		x, y := a.Float(), b.Float()
		return x < y || x != x || y != y
	}
	return false
}
