//! `fleetctl sessions count|list|show|destroy`: what is in a store, for an operator.

use std::time::Duration;

use clap::Subcommand;
use fleet_core::codec::{self, SessionFormat};
use fleet_core::inventory::{Cursor, LockState};
use fleet_core::{
    open_inventory, open_rekey, parse_save_path, Inventory, RekeyCounts, SessionId, Timeouts,
};
use serde_json::json;

#[derive(Subcommand)]
pub enum Action {
    /// How many sessions are stored (walks the store with SCAN / by primary key).
    Count,
    /// Every session's id, data size and remaining lifetime, page by page.
    List {
        /// Stop after this many sessions and print the cursor to continue from.
        #[arg(long)]
        limit: Option<usize>,
        /// Continue from a cursor printed by an earlier --limit run.
        #[arg(long)]
        after: Option<String>,
    },
    /// One session: size, remaining lifetime, whether it is locked, and its data decoded.
    Show {
        id: String,
        /// session.serialize_handler of the data: php, php_serialize, or auto (recognise it).
        #[arg(long, default_value = "auto")]
        format: String,
    },
    /// Delete one session (the visitor is logged out on their next request).
    Destroy { id: String },
    /// Encrypt every stored session again with the first key of the store's
    /// encryption_key_file (and encrypt those stored in the clear), in bounded batches.
    /// A session written meanwhile is never overwritten; run it again until nothing is
    /// left to do, then the other keys can be removed from the file.
    Rekey {
        /// Sessions per batch (one SCAN page or primary-key range).
        #[arg(long, default_value_t = 500)]
        batch: usize,
    },
}

/// Runs `action` on the store `save_path`; returns what to print.
pub fn run(
    save_path: &str,
    action: Action,
    as_json: bool,
) -> Result<String, Box<dyn std::error::Error>> {
    let config = parse_save_path(save_path)?;
    if let Action::Rekey { batch } = action {
        return rekey(&config, batch.max(1), as_json);
    }
    let mut store = open_inventory(&config, Timeouts::default())?;
    match action {
        Action::Count => {
            let n = store.count()?;
            Ok(if as_json {
                json!({ "store": store.endpoint(), "sessions": n }).to_string()
            } else {
                format!("{}: {n} sessions", store.endpoint())
            })
        }
        Action::List { limit, after } => list(store.as_mut(), limit, after, as_json),
        Action::Show { id, format } => show(store.as_mut(), &id, &format, as_json),
        Action::Rekey { .. } => Err("rekey runs on its own store".into()),
        Action::Destroy { id } => {
            let id = SessionId::parse(id.as_bytes()).map_err(fleet_core::StoreError::from)?;
            let removed = store.remove(&id)?;
            Ok(if as_json {
                json!({ "id": id.as_str(), "destroyed": removed }).to_string()
            } else if removed {
                format!("{}: destroyed", id.as_str())
            } else {
                format!("{}: no such session (nothing to destroy)", id.as_str())
            })
        }
    }
}

/// `sessions rekey`: every page re-sealed, with a running count on stderr.
fn rekey(
    config: &fleet_core::StoreConfig,
    batch: usize,
    as_json: bool,
) -> Result<String, Box<dyn std::error::Error>> {
    let mut rekey = open_rekey(config, Timeouts::default())?;
    let progress = indicatif::ProgressBar::new_spinner();
    let mut counts = RekeyCounts::default();
    let mut cursor: Option<Cursor> = None;
    loop {
        let (page, next) = rekey.page(cursor.as_ref(), batch)?;
        counts += page;
        progress.set_message(format!("{} re-encrypted", counts.rekeyed));
        progress.tick();
        match next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    progress.finish_and_clear();
    Ok(if as_json {
        json!({
            "store": rekey.endpoint(),
            "rekeyed": counts.rekeyed,
            "current": counts.current,
            "changed": counts.changed,
            "unreadable": counts.unreadable,
            "skipped_no_expiry": counts.skipped,
        })
        .to_string()
    } else {
        let again = match counts.changed {
            0 => String::new(),
            n => format!("; {n} changed or were locked meanwhile: run it again"),
        };
        format!(
            "{}: {} re-encrypted with the first key, {} already were, {} not readable with these keys (left as they are), {} without expiry (not Fleet's sessions, left as they are){again}",
            rekey.endpoint(),
            counts.rekeyed,
            counts.current,
            counts.unreadable,
            counts.skipped
        )
    })
}

fn list(
    store: &mut dyn Inventory,
    limit: Option<usize>,
    after: Option<String>,
    as_json: bool,
) -> Result<String, Box<dyn std::error::Error>> {
    let mut cursor = after.map(Cursor);
    let mut out = Vec::new();
    let mut rows = Vec::new();
    loop {
        let want = limit
            .map(|l| l.saturating_sub(rows.len()))
            .unwrap_or(500)
            .min(500);
        if want == 0 {
            break;
        }
        let (page, next) = store.page(cursor.as_ref(), want, false)?;
        rows.extend(page);
        cursor = next;
        if cursor.is_none() {
            break;
        }
    }
    if as_json {
        let sessions: Vec<_> = rows
            .iter()
            .map(|s| json!({ "id": s.id, "size": s.size, "ttl": s.ttl.map(|t| t.as_secs_f64()) }))
            .collect();
        let next = cursor.map(|c| c.0);
        return Ok(json!({ "sessions": sessions, "next": next }).to_string());
    }
    out.push(format!("{:<48} {:>10} {:>12}", "ID", "BYTES", "EXPIRES IN"));
    for s in &rows {
        out.push(format!(
            "{:<48} {:>10} {:>12}",
            s.id,
            s.size,
            lifetime(s.ttl)
        ));
    }
    out.push(format!("{} sessions", rows.len()));
    if let Some(c) = cursor {
        out.push(format!("more: continue with --after '{}'", c.0));
    }
    Ok(out.join("\n"))
}

fn show(
    store: &mut dyn Inventory,
    id: &str,
    format: &str,
    as_json: bool,
) -> Result<String, Box<dyn std::error::Error>> {
    let id = SessionId::parse(id.as_bytes()).map_err(fleet_core::StoreError::from)?;
    let Some(session) = store.fetch(&id)? else {
        return Err(format!(
            "{}: no session {} (never created, expired or destroyed)",
            store.endpoint(),
            id.as_str()
        )
        .into());
    };
    let lock = store.lock_state(&id)?;
    let compressed = fleet_core::compress::is_framed(&session.data);
    let decoded = match (session.inflated(), format) {
        (Err(e), _) => Err(codec::DecodeError {
            format: "compressed",
            position: 0,
            reason: e.to_string(),
        }),
        (Ok(data), "auto") => codec::decode_any(&data),
        (Ok(data), "php") => codec::decode(&data, SessionFormat::Php),
        (Ok(data), "php_serialize") => codec::decode(&data, SessionFormat::PhpSerialize),
        (_, other) => {
            return Err(format!("--format {other}: use php, php_serialize or auto").into())
        }
    };
    let lock_text = match lock {
        LockState::Free => "not locked".to_owned(),
        LockState::Held { ttl: Some(t) } => format!(
            "locked by a request; the lock ends in {:.1} s unless its holder renews it",
            t.as_secs_f64()
        ),
        LockState::Held { ttl: None } => "locked, with no expiry (not set by Fleet)".to_owned(),
        LockState::HeldByConnection { connection_id } => format!(
            "locked by MySQL connection {connection_id} (SELECT * FROM information_schema.PROCESSLIST WHERE ID = {connection_id} names its host)"
        ),
        LockState::Unknown => "lock state not visible (lock=row holds InnoDB row locks)".to_owned(),
    };
    if as_json {
        let (data, note) = match &decoded {
            Ok(vars) => (vars.to_json(), json!(null)),
            Err(e) => (
                json!({ "@raw": String::from_utf8_lossy(&session.data) }),
                json!(e.to_string()),
            ),
        };
        return Ok(json!({
            "id": id.as_str(),
            "size": session.data.len(),
            "compressed": compressed,
            "ttl": session.ttl.map(|t| t.as_secs_f64()),
            "lock": lock_text,
            "format": decoded.as_ref().ok().map(|v| v.format.name()),
            "data": data,
            "note": note,
        })
        .to_string());
    }
    let mut out = vec![
        format!("session {}", id.as_str()),
        format!(
            "  size: {} bytes{}",
            session.data.len(),
            if compressed {
                " stored (compressed)"
            } else {
                ""
            }
        ),
        format!("  expires in: {}", lifetime(session.ttl)),
        format!("  lock: {lock_text}"),
    ];
    match decoded {
        Ok(vars) => {
            out.push(format!("  format: {}", vars.format.name()));
            out.push(vars.to_text());
        }
        Err(e) => {
            out.push(format!("  note: {e}; the raw data follows"));
            out.push(
                String::from_utf8_lossy(&session.data)
                    .escape_debug()
                    .to_string(),
            );
        }
    }
    Ok(out.join("\n"))
}

fn lifetime(ttl: Option<Duration>) -> String {
    match ttl {
        Some(t) => format!("{:.0} s", t.as_secs_f64()),
        None => "never".to_owned(),
    }
}
