package registry

import (
	"context"
	"fmt"
	"slices"

	"github.com/hookrelay/hookrelay/endpoint"
)

// ResealReport is what Reseal did.
type ResealReport struct {
	// Resealed rows now have their secrets sealed under the current
	// endpoint-secrets key and their MAC made with the current row-MAC key.
	Resealed int `json:"resealed"`
	// Current rows already were: left as they were.
	Current int `json:"current"`
	// Failed rows could not be resealed, each with why: a MAC that fails
	// (unless accepted) or secrets sealed under a key the file lacks.
	Failed []endpoint.Refused `json:"-"`
}

// resealPage is how many rows Reseal reads at a time.
const resealPage = 500

// Reseal re-seals every live endpoint's secrets under the current
// endpoint-secrets key and MACs its row under the current row-MAC key;
// rows already current are left alone, so running it again changes
// nothing. A row whose MAC fails is not resealed, since that would vouch
// for what someone changed, unless its id is in accept: the operator
// checked it. Each row is one write; one that fails fails alone.
func (r *Registry) Reseal(ctx context.Context, accept []string) (ResealReport, error) {
	var rep ResealReport
	seen := map[string]bool{}
	for after := ""; ; {
		rows, err := r.query(ctx, `SELECT `+columns+` FROM endpoints WHERE deleted_at IS NULL AND id > ? ORDER BY id LIMIT ?`, after, resealPage)
		if err != nil {
			return rep, fmt.Errorf("reseal: read endpoints after %q: %w", after, err)
		}
		for _, row := range rows {
			accepted := slices.Contains(accept, row.id)
			seen[row.id] = true
			written, err := r.resealRow(ctx, row, accepted)
			switch {
			case err != nil:
				rep.Failed = append(rep.Failed, endpoint.Refused{ID: row.id, Err: err})
			case written:
				rep.Resealed++
			default:
				rep.Current++
			}
		}
		if len(rows) < resealPage {
			break
		}
		after = rows[len(rows)-1].id
	}
	for _, id := range accept {
		if !seen[id] {
			rep.Failed = append(rep.Failed, endpoint.Refused{ID: id, Err: fmt.Errorf("--accept %s: no live endpoint has that id", id)})
		}
	}
	return rep, nil
}

// resealRow reseals one row if it is not current, and says whether it wrote.
func (r *Registry) resealRow(ctx context.Context, row row, accepted bool) (bool, error) {
	macCurrent := false
	if err := r.checkMAC(row); err != nil && !accepted {
		return false, err
	} else if err == nil {
		macCurrent, _ = r.macs.CheckMAC(row.mac, row.macMessage())
	}
	set, err := r.open(row.id, row.secrets)
	if err != nil {
		return false, err
	}
	if _, current := r.secrets.SealedKeyID(row.secrets); current && macCurrent && !accepted {
		return false, nil
	}
	sealed, err := r.seal(row.id, set)
	if err != nil {
		return false, err
	}
	n, err := r.exec(ctx, `UPDATE endpoints SET secrets = ?, mac = ?, version = version + 1 WHERE id = ? AND version = ? AND deleted_at IS NULL`,
		sealed, r.macs.MAC(row.macMessage()), row.id, row.version)
	switch {
	case err != nil:
		return false, fmt.Errorf("endpoint %q: write it resealed: %w", row.id, err)
	case n == 0:
		return false, fmt.Errorf("endpoint %q changed while being resealed; run reseal again", row.id)
	}
	r.changed(row.accountID, row.id)
	return true, nil
}
