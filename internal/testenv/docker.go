package testenv

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ory/dockertest/v3"
	"github.com/ory/dockertest/v3/docker"
	"go.temporal.io/sdk/client"

	"github.com/hookrelay/hookrelay/temporalclient"
)

// The Temporal CLI's image at the version `make tools` builds into
// bin/temporal (TEMPORAL_CLI_VERSION in the Makefile; a test checks they
// agree), so docker and devserver modes run the same server.
const (
	DockerImageRepository = "temporalio/temporal"
	DockerImageTag        = "1.5.1"
)

// ErrNoDocker says no Docker engine answered.
var ErrNoDocker = errors.New("no Docker engine answers (DOCKER_HOST, else the default socket)")

// PingDocker asks the Docker engine whether it answers; the error wraps ErrNoDocker.
func PingDocker() error {
	pool, err := dockertest.NewPool("")
	if err != nil {
		return fmt.Errorf("%w: %v", ErrNoDocker, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := pool.Client.PingWithContext(ctx); err != nil {
		return fmt.Errorf("%w: %v", ErrNoDocker, err)
	}
	return nil
}

// startContainer runs the dev server image, bound to a free port on
// 127.0.0.1, and connects to it as to any cluster, in a fresh namespace.
func startContainer(ctx context.Context) (*RemoteServer, error) {
	if err := PingDocker(); err != nil {
		return nil, err
	}
	pool, err := dockertest.NewPool("")
	if err != nil {
		return nil, err
	}
	res, err := pool.RunWithOptions(&dockertest.RunOptions{
		Repository:   DockerImageRepository,
		Tag:          DockerImageTag,
		Cmd:          append([]string{"server", "start-dev", "--ip", "0.0.0.0", "--headless", "--log-level", "warn"}, FairnessArgs...),
		ExposedPorts: []string{"7233/tcp"},
		PortBindings: map[docker.Port][]docker.PortBinding{"7233/tcp": {{HostIP: "127.0.0.1", HostPort: ""}}},
		Labels:       map[string]string{"org.hookrelay.tests": "temporal"},
	}, func(hc *docker.HostConfig) {
		hc.AutoRemove = true
		hc.RestartPolicy = docker.RestartPolicy{Name: "no"}
	})
	if err != nil {
		return nil, fmt.Errorf("start %s:%s (pulled on first use; %s=%s uses bin/temporal instead): %w",
			DockerImageRepository, DockerImageTag, EnvServer, ModeDevServer, err)
	}
	// A run that dies without cleanup leaves no container beyond this.
	res.Expire(uint((30 * time.Minute).Seconds()))
	stop := func() error { return pool.Purge(res) }
	addr := res.GetHostPort("7233/tcp")
	pool.MaxWait = 2 * time.Minute
	err = pool.Retry(func() error {
		c, err := client.DialContext(ctx, client.Options{HostPort: addr, Logger: quietLogger()})
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.CheckHealth(ctx, &client.CheckHealthRequest{})
		return err
	})
	if err != nil {
		stop()
		return nil, fmt.Errorf("dev server container at %s did not answer: %w", addr, err)
	}
	return connectCluster(ctx, addr, "", temporalclient.Security{}, stop)
}
