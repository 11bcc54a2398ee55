package config

import (
	"encoding"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// applyEnv overrides every leaf key whose environment variable is set.
func (p *parser) applyEnv(v reflect.Value, prefix, envPrefix string, lookup func(string) (string, bool)) {
	for _, f := range fields(v.Type()) {
		fv := v.FieldByIndex(f.Index)
		key := join(prefix, f.name)
		if isSection(f.Type) {
			p.applyEnv(fv, key, envPrefix, lookup)
			continue
		}
		name := EnvName(envPrefix, key)
		s, ok := lookup(name)
		if !ok {
			continue
		}
		p.env[key] = name
		nv := reflect.New(f.Type).Elem()
		if err := setString(nv, s); err != nil {
			p.errs = append(p.errs, &Error{File: p.file, Key: key, Env: name,
				Msg: fmt.Sprintf("%s: %v", key, err)})
			continue
		}
		fv.Set(nv)
	}
}

// setString parses s into v according to v's type. Lists are
// comma-separated.
func setString(v reflect.Value, s string) error {
	if v.CanAddr() && v.Addr().Type().Implements(textUnmarshalerType) {
		if err := v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil {
			return fmt.Errorf("invalid value %q: %v", s, err)
		}
		return nil
	}
	if v.Type() == durationType {
		d, err := time.ParseDuration(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("invalid duration %q (want e.g. 500ms, 30s, 1m)", s)
		}
		v.SetInt(int64(d))
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(s)
	case reflect.Bool:
		b, err := strconv.ParseBool(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("invalid boolean %q (want true or false)", s)
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		n, err := strconv.ParseInt(strings.TrimSpace(s), 0, v.Type().Bits())
		if err != nil {
			return fmt.Errorf("invalid integer %q", s)
		}
		v.SetInt(n)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		n, err := strconv.ParseUint(strings.TrimSpace(s), 0, v.Type().Bits())
		if err != nil {
			return fmt.Errorf("invalid unsigned integer %q", s)
		}
		v.SetUint(n)
	case reflect.Float32, reflect.Float64:
		f, err := strconv.ParseFloat(strings.TrimSpace(s), v.Type().Bits())
		if err != nil {
			return fmt.Errorf("invalid number %q", s)
		}
		v.SetFloat(f)
	case reflect.Slice:
		s = strings.TrimSpace(s)
		if s == "" {
			v.Set(reflect.MakeSlice(v.Type(), 0, 0))
			return nil
		}
		parts := strings.Split(s, ",")
		sl := reflect.MakeSlice(v.Type(), len(parts), len(parts))
		for i, part := range parts {
			if err := setString(sl.Index(i), strings.TrimSpace(part)); err != nil {
				return fmt.Errorf("item %d: %w", i, err)
			}
		}
		v.Set(sl)
	case reflect.Map:
		// KEY=VALUE pairs, comma-separated: GLINT_GUARD_SEVERITY=VIRTUAL_MACHINE=none
		m := reflect.MakeMap(v.Type())
		for i, part := range strings.Split(s, ",") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			k, val, ok := strings.Cut(part, "=")
			if !ok {
				return fmt.Errorf("item %d: %q is not KEY=VALUE", i, part)
			}
			key := reflect.New(v.Type().Key()).Elem()
			if err := setString(key, strings.TrimSpace(k)); err != nil {
				return fmt.Errorf("item %d key: %w", i, err)
			}
			elem := reflect.New(v.Type().Elem()).Elem()
			if err := setString(elem, strings.TrimSpace(val)); err != nil {
				return fmt.Errorf("item %d value: %w", i, err)
			}
			m.SetMapIndex(key, elem)
		}
		v.Set(m)
	default:
		return fmt.Errorf("type %s cannot be set from the environment", v.Type())
	}
	return nil
}
