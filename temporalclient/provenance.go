package temporalclient

import (
	"context"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/workflow"

	"github.com/hookrelay/hookrelay/internal/codec"
)

// Provenance. The codec reads payloads that are not encrypted (histories
// written before encryption, or with --insecure-plaintext), so decoding
// alone cannot tell a client holding the key from anyone who reaches the
// frontend and starts a workflow with plaintext input. The converter a
// keyed client builds therefore tells the values it decodes: a value whose
// type has a MarkUnsealed method (workflow and activity inputs, see
// workflows.Provenance) is marked when its payload was not sealed by a key
// of this key file, and the code acting on it refuses to. Marking changes no
// decoded field, so a recorded history replays into the same commands.

// unsealable is a value that wants to know it arrived unsealed.
type unsealable interface{ MarkUnsealed() }

// sealingConverter is the codec data converter that marks unsealed values.
type sealingConverter struct {
	converter.DataConverter // the codec data converter (or a context-bound copy)
	codec                   *codec.Codec
}

func newSealingConverter(c *codec.Codec) converter.DataConverter {
	return sealingConverter{DataConverter: converter.NewCodecDataConverter(converter.GetDefaultDataConverter(), c), codec: c}
}

// Sealed reports whether p is sealed by a key of dc's key file; it is nil
// when dc is not a keyed client's converter (--insecure-plaintext).
func Sealed(dc converter.DataConverter) func(*commonpb.Payload) bool {
	if s, ok := dc.(sealingConverter); ok {
		return s.codec.Sealed
	}
	return nil
}

func (s sealingConverter) FromPayload(p *commonpb.Payload, v any) error {
	if err := s.DataConverter.FromPayload(p, v); err != nil {
		return err
	}
	s.mark(p, v)
	return nil
}

func (s sealingConverter) FromPayloads(ps *commonpb.Payloads, vs ...any) error {
	if err := s.DataConverter.FromPayloads(ps, vs...); err != nil {
		return err
	}
	for i, v := range vs {
		if i < len(ps.GetPayloads()) {
			s.mark(ps.GetPayloads()[i], v)
		}
	}
	return nil
}

func (s sealingConverter) mark(p *commonpb.Payload, v any) {
	if u, ok := v.(unsealable); ok && !s.codec.Sealed(p) {
		u.MarkUnsealed()
	}
}

// The SDK binds converters to contexts; the bound copy marks too.

func (s sealingConverter) WithWorkflowContext(ctx workflow.Context) converter.DataConverter {
	if ca, ok := s.DataConverter.(converter.ContextAware); ok {
		return sealingConverter{ca.WithWorkflowContext(ctx), s.codec}
	}
	return s
}

func (s sealingConverter) WithContext(ctx context.Context) converter.DataConverter {
	if ca, ok := s.DataConverter.(converter.ContextAware); ok {
		return sealingConverter{ca.WithContext(ctx), s.codec}
	}
	return s
}

func (s sealingConverter) WithSerializationContext(sc converter.SerializationContext) converter.DataConverter {
	if d, ok := s.DataConverter.(converter.DataConverterWithSerializationContext); ok {
		return sealingConverter{d.WithSerializationContext(sc), s.codec}
	}
	return s
}

// Codec is the payload codec, for the SDK's header encoding.
func (s sealingConverter) Codec() converter.PayloadCodec {
	if p, ok := s.DataConverter.(converter.PayloadCodecProvider); ok {
		return p.Codec()
	}
	return s.codec
}
