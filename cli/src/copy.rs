//! `fleetctl copy`: moves sessions into a Fleet store without logging anyone out.
//!
//! Each session keeps the lifetime it has left (a file's mtime plus `--max-lifetime`, or the
//! source's own expiry); expired ones are skipped, and a session already in the destination
//! is never overwritten (it may be newer: a visitor already served through Fleet), so the
//! copy can be run again after switching php.ini to pick up sessions written in between.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use fleet_core::inventory::Cursor;
use fleet_core::{open_inventory, parse_save_path, SessionId, Timeouts};
use indicatif::{ProgressBar, ProgressStyle};

/// What a copy did, session by session.
#[derive(Default, Debug)]
pub struct Counts {
    pub copied: u64,
    pub expired: u64,
    pub present: u64,
    pub failed: u64,
}

impl Counts {
    pub fn summary(&self, dry_run: bool) -> String {
        let copied = if dry_run { "would copy" } else { "copied" };
        format!(
            "{copied} {}, skipped as expired {}, skipped as present {}, failed {}",
            self.copied, self.expired, self.present, self.failed
        )
    }

    pub fn json(&self, dry_run: bool) -> String {
        serde_json::json!({
            "copied": self.copied,
            "skipped_expired": self.expired,
            "skipped_present": self.present,
            "failed": self.failed,
            "dry_run": dry_run,
        })
        .to_string()
    }
}

pub struct Copy {
    pub from: String,
    pub to: String,
    pub max_lifetime: Duration,
    pub dry_run: bool,
}

/// One session read from the source.
struct Found {
    id: String,
    data: Vec<u8>,
    /// Lifetime left; `None` or zero: expired.
    left: Option<Duration>,
    /// Why it could not be read.
    error: Option<String>,
}

impl Copy {
    pub fn run(&self) -> Result<Counts, Box<dyn std::error::Error>> {
        let destination = parse_save_path(&self.to)?;
        let mut to = open_inventory(&destination, Timeouts::default())?;
        let mut counts = Counts::default();
        let progress = ProgressBar::new_spinner();
        progress.set_style(
            ProgressStyle::with_template("{spinner} {pos} sessions read ({per_sec}) {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        let mut first_errors = 0;
        let mut each = |found: Found, counts: &mut Counts| {
            progress.inc(1);
            if let Some(e) = found.error {
                counts.failed += 1;
                progress.suspend(|| eprintln!("fleetctl: session {}: {e}", found.id));
                return;
            }
            let left = found.left.filter(|l| *l >= Duration::from_secs(1));
            let Some(left) = left else {
                counts.expired += 1;
                return;
            };
            let outcome = SessionId::parse(found.id.as_bytes())
                .map_err(|e| e.to_string())
                .and_then(|id| {
                    if self.dry_run {
                        to.fetch(&id).map(|s| s.is_none())
                    } else {
                        to.insert_if_absent(&id, &found.data, left)
                    }
                    .map_err(|e| e.to_string())
                });
            match outcome {
                Ok(true) => counts.copied += 1,
                Ok(false) => counts.present += 1,
                Err(e) => {
                    counts.failed += 1;
                    if first_errors < 10 {
                        first_errors += 1;
                        progress.suspend(|| eprintln!("fleetctl: session {}: {e}", found.id));
                    }
                }
            }
        };
        match self.from.strip_prefix("files://") {
            Some(dir) => self.scan_files(Path::new(dir), &mut |f| each(f, &mut counts))?,
            None => self.scan_store(&mut |f| each(f, &mut counts))?,
        }
        progress.finish_and_clear();
        Ok(counts)
    }

    /// `sess_<id>` files of PHP's files handler; a file's session lives until its mtime plus
    /// the lifetime (`session.gc_maxlifetime`).
    fn scan_files(
        &self,
        dir: &Path,
        each: &mut dyn FnMut(Found),
    ) -> Result<(), Box<dyn std::error::Error>> {
        let entries = std::fs::read_dir(dir)
            .map_err(|e| format!("--from {}: cannot read the directory: {e}", dir.display()))?;
        let now = SystemTime::now();
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            let Some(id) = name.to_str().and_then(|n| n.strip_prefix("sess_")) else {
                continue;
            };
            let path: PathBuf = entry.path();
            let read =
                std::fs::read(&path).and_then(|data| Ok((data, entry.metadata()?.modified()?)));
            let (data, modified) = match read {
                Ok(found) => found,
                // Deleted by PHP's gc since the listing, or unreadable.
                Err(e) => {
                    each(Found {
                        id: id.to_owned(),
                        data: Vec::new(),
                        left: None,
                        error: Some(format!("{}: {e}", path.display())),
                    });
                    continue;
                }
            };
            let ends = modified + self.max_lifetime;
            each(Found {
                id: id.to_owned(),
                data,
                left: ends.duration_since(now).ok(),
                error: None,
            });
        }
        Ok(())
    }

    /// Every session of a store, page by page (SCAN on Redis).
    fn scan_store(&self, each: &mut dyn FnMut(Found)) -> Result<(), Box<dyn std::error::Error>> {
        let source = parse_save_path(&self.from)?;
        if source.common.sealing.hasher.is_some() {
            return Err("the source has hash_ids=1: its keys are HMACs of the ids, which cannot be turned back into ids; copy that store with the server's own tools (the destination needs the same hash_key_file)".into());
        }
        let mut from = open_inventory(&source, Timeouts::default())?;
        let mut cursor: Option<Cursor> = None;
        loop {
            let (page, next) = from.page(cursor.as_ref(), 500, true)?;
            for s in page {
                each(Found {
                    id: s.id,
                    data: s.data.unwrap_or_default(),
                    left: Some(s.ttl.unwrap_or(self.max_lifetime)),
                    error: None,
                });
            }
            match next {
                Some(c) => cursor = Some(c),
                None => return Ok(()),
            }
        }
    }
}
