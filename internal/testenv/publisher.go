package testenv

import (
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"

	"github.com/hookrelay/hookrelay/deliveries"
	"github.com/hookrelay/hookrelay/endpoint"
)

// LocalPublisher publishes in this process through c, on taskQueue, to
// the endpoints in the file at path; dc encrypts the payloads it writes
// as workers expect them (nil: none).
func LocalPublisher(c client.Client, path, taskQueue string, dc converter.DataConverter) (*deliveries.Client, error) {
	cfg, err := endpoint.Load(path)
	if err != nil {
		return nil, err
	}
	return &deliveries.Client{Temporal: c, Endpoints: cfg, TaskQueue: taskQueue, DataConverter: dc}, nil
}
