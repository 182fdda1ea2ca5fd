//! `--at-rest`: what sessions at rest cost. Scenario (a) (many sessions, each request a
//! read and a write) on Fleet Redis and Fleet MySQL without encryption, with
//! `encryption_key_file=`, and with `hash_ids=1` too, beside phpredis, for the counter
//! page (a few bytes) and a 2 KB cart; the rounds interleave the forms and the report
//! gives medians and each form's req/s as a ratio of the same backend without encryption
//! (the goal: within 5 %).
//!
//! Writes `bench/results/at_rest.md`.

use super::*;

/// Two keys (base64 of 32 bytes), written to a file for the run.
const KEY: &str = "q1JvTgYJ0zH7b3o6ZK2aK3m0ZlLwz2cX4n2v0Yv7cXQ=";
const HASH_KEY: &str = "mZc0VfT4r6yK2xQ8wN1pL5sH9dJ3gB7aE0uI4oY2tR8=";

struct Form {
    label: &'static str,
    handler: Handler,
    /// Options added to the handler's save_path.
    options: &'static str,
}

const FORMS: [Form; 7] = [
    Form {
        label: "phpredis 6 (defaults: no locking)",
        handler: Handler::PhpRedis,
        options: "",
    },
    Form {
        label: "Fleet Redis",
        handler: Handler::FleetRedis,
        options: "",
    },
    Form {
        label: "Fleet Redis, encryption_key_file",
        handler: Handler::FleetRedis,
        options: "encryption_key_file={keys}",
    },
    Form {
        label: "Fleet Redis, encryption_key_file + hash_ids=1",
        handler: Handler::FleetRedis,
        options: "encryption_key_file={keys}&hash_ids=1&hash_key_file={hash}",
    },
    Form {
        label: "Fleet MySQL",
        handler: Handler::FleetMySql,
        options: "",
    },
    Form {
        label: "Fleet MySQL, encryption_key_file",
        handler: Handler::FleetMySql,
        options: "encryption_key_file={keys}",
    },
    Form {
        label: "Fleet MySQL, encryption_key_file + hash_ids=1",
        handler: Handler::FleetMySql,
        options: "encryption_key_file={keys}&hash_ids=1&hash_key_file={hash}",
    },
];

fn ini(form: &Form, b: &Backends, keys: &Path, hash: &Path) -> Vec<(String, String)> {
    let mut ini = pool_ini(form.handler, b, false);
    if !form.options.is_empty() {
        let options = form
            .options
            .replace("{keys}", &keys.display().to_string())
            .replace("{hash}", &hash.display().to_string());
        for (k, v) in ini.iter_mut() {
            if k == "session.save_path" {
                let sep = if v.contains('?') { '&' } else { '?' };
                *v = format!("{v}{sep}{options}");
            }
        }
    }
    ini
}

pub(crate) fn run(b: &Backends, options: &Options) -> String {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
    let (keys, hash) = (dir.path().join("keys"), dir.path().join("hash"));
    for (file, key) in [(&keys, KEY), (&hash, HASH_KEY)] {
        std::fs::write(file, format!("{key}\n")).unwrap_or_else(|e| panic!("{e}"));
    }
    let pages = [
        ("counter (scenario (a))", "counter.php"),
        ("2 KB cart", "cart.php?items=14"),
    ];
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Sessions at rest: encryption and hashed ids\n\n{}\n\nScenario (a): {SESSIONS} sessions, {CLIENTS} wrk clients, each request reads and writes its session; two FPM pools of {WORKERS_PER_POOL} workers behind nginx. Median of {} interleaved rounds of {} s. The ratio is req/s against the same backend without encryption (the goal: at least 0.95).\n",
        machine(),
        options.rounds,
        options.duration.as_secs()
    );
    // FLEET_AT_REST_PAGE=cart (or counter) runs one page only.
    let only_page = std::env::var("FLEET_AT_REST_PAGE").ok();
    for (page_label, page) in pages {
        if only_page.as_deref().is_some_and(|p| !page.starts_with(p)) {
            continue;
        }
        let mut runs: Vec<Vec<Measurement>> = vec![Vec::new(); FORMS.len()];
        for round in 0..options.rounds {
            for (i, form) in FORMS.iter().enumerate() {
                if !wanted(options, form.handler) {
                    continue;
                }
                eprintln!(
                    "bench: at rest: {page_label}, round {}: {}",
                    round + 1,
                    form.label
                );
                let web = start_stack(&ini(form, b, &keys, &hash));
                let env = [
                    ("FLEET_BENCH_SESSIONS", SESSIONS.to_string()),
                    (
                        "FLEET_BENCH_PREFIX",
                        format!("rest{round}{i}{}", page.len()),
                    ),
                ];
                let url = web.url(page);
                wrk::run(&url, CLIENTS, Duration::from_secs(2), Some(&script()), &env);
                let m = measure(form.handler, b, &web, || {
                    wrk::run(&url, CLIENTS, options.duration, Some(&script()), &env)
                });
                report_problems(&web, form.handler, Scenario::A, &m);
                eprintln!(
                    "bench: at rest: {:.0} req/s, p99 {}",
                    m.wrk.rps,
                    us(m.wrk.p99)
                );
                runs[i].push(m);
            }
        }
        let _ = writeln!(
            out,
            "## {page_label}\n\n| handler | req/s | rounds | ratio | p99 | worker CPU per request |\n|---|---:|---|---:|---:|---:|"
        );
        let rps: Vec<f64> = runs
            .iter()
            .map(|ms| median(ms.iter().map(|m| m.wrk.rps).collect()))
            .collect();
        for (i, (form, ms)) in FORMS.iter().zip(&runs).enumerate() {
            if ms.is_empty() {
                continue;
            }
            // The same backend without encryption: the first Fleet form of this handler.
            let plain = FORMS
                .iter()
                .position(|f| f.handler == form.handler && f.options.is_empty())
                .map_or(rps[i], |p| rps[p]);
            let ratio = match form.handler {
                Handler::PhpRedis => "–".to_owned(),
                _ => format!("{:.3}", rps[i] / plain.max(1.0)),
            };
            let p99 = median(ms.iter().map(|m| m.wrk.p99.as_secs_f64()).collect());
            let cpu = median(
                ms.iter()
                    .filter_map(|m| m.worker_cpu)
                    .map(|d| d.as_secs_f64())
                    .collect(),
            );
            let rounds: Vec<String> = ms.iter().map(|m| format!("{:.0}", m.wrk.rps)).collect();
            let _ = writeln!(
                out,
                "| {} | {:.0} | {} | {ratio} | {} | {:.0} µs |",
                form.label,
                rps[i],
                rounds.join(", "),
                us(Duration::from_secs_f64(p99)),
                cpu * 1e6
            );
        }
        let _ = writeln!(out);
    }
    out
}

/// `--only redis` / `--only mysql` limits the backends.
fn wanted(options: &Options, handler: Handler) -> bool {
    let Some(only) = &options.only else {
        return true;
    };
    let name = match handler {
        Handler::FleetMySql => "mysql",
        _ => "redis",
    };
    only.split(',').any(|o| o == name)
}
