package httpapi

import (
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"go.yaml.in/yaml/v3"
)

// openAPIYAML is the API's contract, kept beside the routes it describes; a
// test holds it and routeTable together, and checks every answer against it.
//
//go:embed openapi.yaml
var openAPIYAML []byte

// openAPIJSON is openAPIYAML as GET /v1/openapi.json serves it, converted
// once: a document that does not convert fails every test of the package.
var openAPIJSON = mustJSON(openAPIYAML)

// OpenAPI returns the API's OpenAPI 3.1 document as JSON (httpapi/openapi.yaml),
// the contract clients are generated from.
func OpenAPI() []byte { return append([]byte(nil), openAPIJSON...) }

// getOpenAPI is GET /v1/openapi.json. It needs no token: the document is
// public, as its source in the repository is, and holds no account's data.
func (s *Server) getOpenAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(openAPIJSON)))
	w.WriteHeader(http.StatusOK)
	w.Write(openAPIJSON) // the client may be gone; nothing to do about it
}

func mustJSON(doc []byte) []byte {
	b, err := yamlToJSON(doc)
	if err != nil {
		panic(fmt.Sprintf("httpapi/openapi.yaml: %v", err))
	}
	return b
}

// yamlToJSON converts a YAML document of JSON values to JSON, keeping its
// keys' order. Mapping keys are taken as written, so a status code "200" or
// 200 is the key "200" either way.
func yamlToJSON(doc []byte) ([]byte, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(doc, &root); err != nil {
		return nil, fmt.Errorf("parse: %w", err)
	}
	if root.Kind != yaml.DocumentNode || len(root.Content) != 1 {
		return nil, errors.New("want one YAML document")
	}
	return jsonValue(root.Content[0])
}

// jsonValue writes n as JSON.
func jsonValue(n *yaml.Node) ([]byte, error) {
	switch n.Kind {
	case yaml.AliasNode:
		return jsonValue(n.Alias)
	case yaml.MappingNode:
		return jsonObject(n)
	case yaml.SequenceNode:
		buf := []byte{'['}
		for i, c := range n.Content {
			v, err := jsonValue(c)
			if err != nil {
				return nil, err
			}
			if i > 0 {
				buf = append(buf, ',')
			}
			buf = append(buf, v...)
		}
		return append(buf, ']'), nil
	case yaml.ScalarNode:
		var v any
		if err := n.Decode(&v); err != nil {
			return nil, fmt.Errorf("line %d: %w", n.Line, err)
		}
		b, err := marshal(v)
		if err != nil {
			return nil, fmt.Errorf("line %d: %q is no JSON value: %w", n.Line, n.Value, err)
		}
		return b, nil
	}
	return nil, fmt.Errorf("line %d: unexpected YAML node kind %d", n.Line, n.Kind)
}

// jsonObject writes a mapping's pairs in their order, refusing a repeated key.
func jsonObject(n *yaml.Node) ([]byte, error) {
	buf := []byte{'{'}
	seen := make(map[string]bool, len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i]
		if k.Kind != yaml.ScalarNode {
			return nil, fmt.Errorf("line %d: a key must be a scalar", k.Line)
		}
		if seen[k.Value] {
			return nil, fmt.Errorf("line %d: key %q repeated", k.Line, k.Value)
		}
		seen[k.Value] = true
		v, err := jsonValue(n.Content[i+1])
		if err != nil {
			return nil, err
		}
		kb, err := marshal(k.Value)
		if err != nil {
			return nil, err
		}
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(append(append(buf, kb...), ':'), v...)
	}
	return append(buf, '}'), nil
}

// marshal is json.Marshal without escaping <, > and &, which the
// document's prose holds and no reader of it puts in HTML.
func marshal(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(b.Bytes(), []byte("\n")), nil
}
