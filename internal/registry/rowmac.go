package registry

import (
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/hookrelay/hookrelay/internal/codec"
)

// ErrRowRefused means an endpoint's row failed its MAC (or has none, or was
// MACed under a key the key file no longer holds): it was changed outside
// hookrelay, or cannot be checked, so it is not served.
var ErrRowRefused = errors.New("row refused")

// macMessage is what a row's MAC covers: its id, account, URL and events as
// stored, each length-prefixed so no two rows give the same bytes.
func (r row) macMessage() []byte {
	var msg []byte
	msg = append(msg, "hookrelay endpoint row v1"...)
	for _, f := range []string{r.id, r.accountID, r.url, r.events} {
		msg = binary.BigEndian.AppendUint32(msg, uint32(len(f)))
		msg = append(msg, f...)
	}
	return msg
}

// checkMAC refuses a live row whose MAC is missing or does not match, with
// an error naming the endpoint (ErrRowRefused).
func (r *Registry) checkMAC(row row) error {
	if row.mac == nil {
		return fmt.Errorf("endpoint %q is refused: %w: it has no MAC (written outside hookrelay?); check its URL and events, then run starter registry reseal --accept %s",
			row.id, ErrRowRefused, row.id)
	}
	_, err := r.macs.CheckMAC(row.mac, row.macMessage())
	switch {
	case err == nil:
		return nil
	case errors.Is(err, codec.ErrUnknownKey):
		return fmt.Errorf("endpoint %q is refused: %w: its MAC was made with a key the key file no longer holds (put the key back, then run starter registry reseal): %w",
			row.id, ErrRowRefused, err)
	default:
		return fmt.Errorf("endpoint %q is refused: %w: its id, account, URL or events were changed outside hookrelay: %w", row.id, ErrRowRefused, err)
	}
}

// backfillMACs MACs, once, the live rows registered before rows carried a
// MAC. The migration that added MACs marks the backfill pending; the first
// process to open the registry after it does it in one transaction, and
// after that a live row without a MAC is refused.
func (r *Registry) backfillMACs(ctx context.Context) error {
	var pending bool
	err := r.db.QueryRowContext(ctx, `SELECT pending FROM row_mac_backfill`).Scan(&pending)
	if err != nil || !pending {
		return wrapBackfill(err)
	}
	tx, err := r.db.BeginTx(ctx, nil)
	if err != nil {
		return wrapBackfill(err)
	}
	defer tx.Rollback() //nolint:errcheck // a no-op after Commit
	res, err := tx.ExecContext(ctx, r.dialect.rebind(`UPDATE row_mac_backfill SET pending = ? WHERE pending = ?`), false, true)
	if err != nil {
		return wrapBackfill(err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 { // another process did it
		return wrapBackfill(err)
	}
	rows, err := r.queryOn(ctx, tx, `SELECT `+columns+` FROM endpoints WHERE deleted_at IS NULL AND mac IS NULL`)
	if err != nil {
		return wrapBackfill(err)
	}
	for _, row := range rows {
		if _, err := tx.ExecContext(ctx, r.dialect.rebind(`UPDATE endpoints SET mac = ? WHERE id = ?`), r.macs.MAC(row.macMessage()), row.id); err != nil {
			return wrapBackfill(err)
		}
	}
	return wrapBackfill(tx.Commit())
}

func wrapBackfill(err error) error {
	if err == nil || errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	return fmt.Errorf("endpoint registry: MAC the rows registered before row MACs: %w", err)
}
