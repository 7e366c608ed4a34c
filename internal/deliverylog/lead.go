package deliverylog

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"hash/fnv"
)

// Lease is one process's hold on a fleet-wide duty (the reconciler's):
// while it holds it, every other process's TryLead of the same name gets
// none. In PostgreSQL it is a session advisory lock on a connection of its
// own, so a process that dies or loses its connection lets it go at once;
// in SQLite, a database of one host, every process holds it.
type Lease struct {
	conn *sql.Conn // nil in SQLite
}

// TryLead takes the lease named name if no other process holds it; nil
// (and no error) when another does.
func (l *Log) TryLead(ctx context.Context, name string) (*Lease, error) {
	if !l.postgres() {
		return &Lease{}, nil
	}
	conn, err := l.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("delivery log: lease %s: %w", name, err)
	}
	var got bool
	if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock($1)`, leaseKey(name)).Scan(&got); err != nil {
		conn.Close()
		return nil, fmt.Errorf("delivery log: lease %s: %w", name, err)
	}
	if !got {
		conn.Close()
		return nil, nil
	}
	return &Lease{conn: conn}, nil
}

// Held reports whether the lease still holds: its connection answers (a
// restarted database ended the session, and with it the lock).
func (le *Lease) Held(ctx context.Context) bool {
	return le.conn == nil || le.conn.PingContext(ctx) == nil
}

// Release lets the lease go.
func (le *Lease) Release() {
	if le.conn != nil {
		// Closing the session releases its advisory locks; a connection the
		// pool kept would hold them.
		le.conn.Raw(func(any) error { return driver.ErrBadConn })
		le.conn.Close()
	}
}

// leaseKey is name as an advisory lock key.
func leaseKey(name string) int64 {
	h := fnv.New64a()
	h.Write([]byte("hookrelay deliverylog lease\x00" + name))
	return int64(h.Sum64())
}
