// Command yamlset copies a YAML file, setting values at dotted key paths; the harness
// uses it to derive a peer core.yaml from Fabric's sampleconfig. Key order is kept
// (comments are not).
//
//	yamlset -in core.yaml -out out.yaml vm.endpoint= chaincode.startuptimeout=120s \
//	    'chaincode.externalBuilders=[{name: x, path: /b, propagateEnvironment: [HOME]}]'
//
// Each value is parsed as YAML (so lists, maps, booleans and numbers work); an empty
// value sets the empty string. Missing intermediate maps are created.
package main

import (
	"flag"
	"fmt"
	"os"
	"strings"

	yaml "go.yaml.in/yaml/v2"
)

func main() {
	in := flag.String("in", "", "input YAML file")
	out := flag.String("out", "", "output YAML file (default: stdout)")
	flag.Parse()
	if err := run(*in, *out, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "yamlset:", err)
		os.Exit(1)
	}
}

func run(in, out string, sets []string) error {
	if in == "" {
		return fmt.Errorf("-in is required")
	}
	data, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	var doc yaml.MapSlice
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	for _, s := range sets {
		key, raw, ok := strings.Cut(s, "=")
		if !ok || key == "" {
			return fmt.Errorf("bad assignment %q (want key.path=value)", s)
		}
		var val interface{} = ""
		if strings.TrimSpace(raw) != "" {
			if err := yaml.Unmarshal([]byte(raw), &val); err != nil {
				return fmt.Errorf("value of %s: %w", key, err)
			}
		}
		doc = set(doc, strings.Split(key, "."), val)
	}
	res, err := yaml.Marshal(doc)
	if err != nil {
		return err
	}
	if out == "" {
		_, err = os.Stdout.Write(res)
		return err
	}
	return os.WriteFile(out, res, 0o644)
}

func set(m yaml.MapSlice, path []string, val interface{}) yaml.MapSlice {
	for i := range m {
		if fmt.Sprint(m[i].Key) != path[0] {
			continue
		}
		if len(path) == 1 {
			m[i].Value = val
		} else {
			sub, _ := m[i].Value.(yaml.MapSlice)
			m[i].Value = set(sub, path[1:], val)
		}
		return m
	}
	if len(path) == 1 {
		return append(m, yaml.MapItem{Key: path[0], Value: val})
	}
	return append(m, yaml.MapItem{Key: path[0], Value: set(nil, path[1:], val)})
}
