package registry

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hookrelay/hookrelay/endpoint"
)

// ErrReadOnly is a write to endpoints managed in the endpoints file.
var ErrReadOnly = errors.New("endpoints are managed in the endpoints file, which is read-only here; edit the file, or use an endpoint registry (--endpoints-db)")

// FileView offers an endpoints file through the registry's management
// calls: reads list and show the file's endpoints of an account (without
// secrets), in the registry's order and pages; every write fails with
// ErrReadOnly.
type FileView struct {
	File *endpoint.File
}

// Get is Registry.Get over the file.
func (v FileView) Get(_ context.Context, accountID, id string) (Entry, error) {
	if err := checkAccount(accountID); err != nil {
		return Entry{}, err
	}
	if e, ok := v.File.Config().Lookup(id); ok && e.AccountID == accountID {
		return Entry{Endpoint: e}, nil
	}
	return Entry{}, notFound(accountID, id)
}

// List is Registry.List over the file.
func (v FileView) List(_ context.Context, accountID string, limit int, cursor string) (Page, error) {
	if err := checkAccount(accountID); err != nil {
		return Page{}, err
	}
	limit, after, err := pageArgs(limit, cursor)
	if err != nil {
		return Page{}, err
	}
	var mine []endpoint.Endpoint
	for _, e := range v.File.Config().Endpoints {
		if e.AccountID == accountID && e.ID > after {
			mine = append(mine, e)
		}
	}
	slices.SortFunc(mine, func(a, b endpoint.Endpoint) int { return strings.Compare(a.ID, b.ID) })
	var page Page
	for i, e := range mine {
		if i == limit {
			page.NextCursor = encodeCursor(mine[i-1].ID)
			break
		}
		page.Entries = append(page.Entries, Entry{Endpoint: e})
	}
	return page, nil
}

// Create fails: the file is read-only.
func (FileView) Create(context.Context, string, Fields) (Entry, string, error) {
	return Entry{}, "", ErrReadOnly
}

// Update fails: the file is read-only.
func (FileView) Update(context.Context, string, string, Fields) (Entry, error) {
	return Entry{}, ErrReadOnly
}

// Delete fails: the file is read-only.
func (FileView) Delete(context.Context, string, string) error { return ErrReadOnly }

// RotateSecret fails: the file is read-only.
func (FileView) RotateSecret(context.Context, string, string, time.Duration) (Rotated, error) {
	return Rotated{}, ErrReadOnly
}

// RevealSecret fails: the file's secrets are the operator's, read where
// the file says (inline, secret_env or secret_file), not over the API.
func (FileView) RevealSecret(context.Context, string, string) (string, error) {
	return "", ErrReadOnly
}

// Resolve finds endpoint id in the file whatever its account, as
// Registry.Resolve does (the API names a delivery's account with it).
func (v FileView) Resolve(_ context.Context, id string) (endpoint.Endpoint, error) {
	if e, ok := v.File.Config().Lookup(id); ok {
		return e, nil
	}
	return endpoint.Endpoint{}, fmt.Errorf("endpoint %q is not in the endpoints file: %w", id, endpoint.ErrNotFound)
}
