package openapicheck

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"

	"github.com/getkin/kin-openapi/openapi3"
)

// strict makes every object schema of an answer that lists its properties
// admit no others, unless it says otherwise. The published document lets
// answers gain fields; in tests a field the server writes must be named.
func strict(doc *openapi3.T) {
	seen := map[*openapi3.Schema]bool{}
	for _, item := range doc.Paths.Map() {
		for _, op := range item.Operations() {
			for _, resp := range op.Responses.Map() {
				if resp.Value == nil {
					continue
				}
				for _, mt := range resp.Value.Content {
					strictSchema(mt.Schema, seen)
				}
			}
		}
	}
}

func strictSchema(ref *openapi3.SchemaRef, seen map[*openapi3.Schema]bool) {
	if ref == nil || ref.Value == nil || seen[ref.Value] {
		return
	}
	s := ref.Value
	seen[s] = true
	if len(s.Properties) > 0 && s.AdditionalProperties.Has == nil && s.AdditionalProperties.Schema == nil {
		no := false
		s.AdditionalProperties.Has = &no
	}
	for _, p := range s.Properties {
		strictSchema(p, seen)
	}
	strictSchema(s.Items, seen)
	for _, list := range []openapi3.SchemaRefs{s.OneOf, s.AnyOf, s.AllOf} {
		for _, sub := range list {
			strictSchema(sub, seen)
		}
	}
}

// decodeJSON decodes one JSON value, numbers as json.Number, as kin-openapi does.
func decodeJSON(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("more than one JSON value")
	}
	return nil
}
