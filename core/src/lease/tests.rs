use super::*;

#[test]
fn lease_names_are_checked() {
    assert!(check_name("billing.cron").is_ok());
    assert!(check_name("mail/queue:42@node-1_a").is_ok());
    for bad in [
        "",
        "a{b}",
        "with space",
        "new\nline",
        &"x".repeat(MAX_LEASE_NAME + 1),
    ] {
        assert!(check_name(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn a_ticket_reads_back_and_its_integer_prefix_is_the_fence() {
    let token = LeaseToken::generate().map_err(|e| e.to_string());
    let ticket = LeaseTicket {
        fence: 42,
        token: token.clone().unwrap_or_else(|e| panic!("{e}")),
    };
    let text = ticket.to_string();
    assert!(text.starts_with("42-"));
    assert_eq!(LeaseTicket::parse(&text), Some(ticket));
    for bad in [
        "",
        "42",
        "x-abc",
        "42-nothex",
        "-1-00000000000000000000000000000000",
    ] {
        assert_eq!(LeaseTicket::parse(bad), None, "{bad}");
    }
}

#[test]
fn tokens_are_random_and_hex() {
    let a = LeaseToken::generate().unwrap();
    let b = LeaseToken::generate().unwrap();
    assert_ne!(a, b);
    assert_eq!(a.as_str().len(), 32);
    assert!(a.as_str().bytes().all(|c| c.is_ascii_hexdigit()));
}

#[test]
fn slots_are_aligned_to_the_period() {
    let s = Duration::from_secs;
    let slot = Slot::of(s(300), s(1_000_000_123), s(60));
    assert_eq!(slot.id, "300s:3333333");
    // The slot runs from 999,999,900 to 1,000,000,200.
    assert_eq!(slot.keep, s(77 + 60), "to the slot's end, plus the margin");
    assert_eq!(Slot::of(s(300), s(1_000_000_199), s(60)).id, slot.id);
    assert_ne!(Slot::of(s(300), s(1_000_000_200), s(60)).id, slot.id);
}

#[test]
fn huge_durations_saturate_instead_of_panicking() {
    let now = Instant::now();
    for d in [
        Duration::MAX,
        Duration::from_secs(u64::MAX / 2),
        Duration::from_secs_f64(1e18),
    ] {
        assert!(later(now, d) > now, "{d:?}");
    }
    assert_eq!(
        later(now, Duration::from_secs(5)),
        now + Duration::from_secs(5)
    );
    assert_eq!(
        wait_slice(Some(Duration::MAX), Duration::MAX),
        MAX_WAIT_SLICE
    );
    let s = Duration::from_secs;
    let slot = Slot::of(Duration::MAX, s(1_000), Duration::MAX);
    assert_eq!(slot.keep, Duration::MAX);
}

#[test]
fn user_seconds_saturate_or_are_refused() {
    let max = Duration::from_secs(604_800);
    assert_eq!(
        saturating_seconds(1.5, max),
        Some(Duration::from_millis(1500))
    );
    assert_eq!(saturating_seconds(0.0, max), Some(Duration::ZERO));
    for huge in [1e7, 1e20, 1e300, f64::MAX] {
        assert_eq!(saturating_seconds(huge, max), Some(max), "{huge}");
    }
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY, -1.0, -1e300] {
        assert_eq!(saturating_seconds(bad, max), None, "{bad}");
    }
}

#[test]
fn a_lease_held_with_a_huge_ttl_and_maximum_hold_does_not_panic() {
    // A huge max_execution_time doubles into a maximum hold no Instant can reach.
    let (mut r, _calls) = recording(Ok(true));
    let token = LeaseToken::generate().unwrap();
    for (ttl, renew_for) in [
        (Duration::from_millis(90), Duration::MAX),
        (Duration::MAX, Duration::MAX),
        (Duration::from_millis(90), Duration::from_secs(u64::MAX)),
    ] {
        let id = r.hold(b"k", &token, ttl, renew_for, Instant::now());
        r.release(id).unwrap();
    }
}

#[test]
fn wait_slice_is_bounded() {
    let s = Duration::from_secs;
    let ms = Duration::from_millis;
    assert_eq!(wait_slice(None, s(10)), MAX_WAIT_SLICE);
    assert_eq!(wait_slice(Some(ms(20)), s(10)), ms(21));
    assert_eq!(wait_slice(Some(s(30)), ms(300)), ms(300));
    assert_eq!(wait_slice(Some(ms(0)), ms(0)), ms(1));
}

/// A renewer whose renewals are recorded, and answer `answer`.
fn recording(answer: Result<bool, &'static str>) -> (Renewer, Arc<Mutex<Vec<Instant>>>) {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let seen = calls.clone();
    let renewer = Renewer::start(Box::new(move |key, token, ttl| {
        assert_eq!(
            (key, token.len(), ttl),
            (&b"k"[..], 32, Duration::from_millis(90))
        );
        seen.lock().unwrap().push(Instant::now());
        answer.map_err(|e| StoreError::server("test", cause(e)))
    }))
    .unwrap();
    (renewer, calls)
}

#[test]
fn a_held_lease_is_renewed_every_third_of_its_ttl_and_not_after_release() {
    let (mut r, calls) = recording(Ok(true));
    let token = LeaseToken::generate().unwrap();
    let ttl = Duration::from_millis(90);
    let id = r.hold(b"k", &token, ttl, Duration::from_secs(10), Instant::now());
    std::thread::sleep(Duration::from_millis(400));
    let report = r.release(id).unwrap();
    let n = calls.lock().unwrap().len();
    assert!(
        (4..=13).contains(&n),
        "{n} renewals in 400 ms at a 30 ms interval"
    );
    assert_eq!(report.renewals as usize, n);
    assert_eq!(report.stopped, None);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        calls.lock().unwrap().len(),
        n,
        "no renewal after the release"
    );
}

#[test]
fn a_short_hold_costs_no_renewal() {
    let (mut r, calls) = recording(Ok(true));
    let token = LeaseToken::generate().unwrap();
    for _ in 0..50 {
        let id = r.hold(
            b"k",
            &token,
            Duration::from_millis(90),
            Duration::from_secs(1),
            Instant::now(),
        );
        r.release(id).unwrap();
    }
    std::thread::sleep(Duration::from_millis(100));
    assert!(calls.lock().unwrap().is_empty());
}

#[test]
fn renewal_stops_at_the_maximum_hold_and_when_the_lease_is_lost() {
    let (mut r, calls) = recording(Ok(true));
    let token = LeaseToken::generate().unwrap();
    let id = r.hold(
        b"k",
        &token,
        Duration::from_millis(90),
        Duration::from_millis(100),
        Instant::now(),
    );
    std::thread::sleep(Duration::from_millis(300));
    let report = r.release(id).unwrap();
    assert_eq!(
        report.stopped,
        Some(RenewalStop::MaxHold(Duration::from_millis(100)))
    );
    assert!(calls.lock().unwrap().len() <= 4);

    let (mut r, calls) = recording(Ok(false));
    let id = r.hold(
        b"k",
        &token,
        Duration::from_millis(90),
        Duration::from_secs(10),
        Instant::now(),
    );
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(r.release(id).unwrap().stopped, Some(RenewalStop::Lost));
    assert_eq!(
        calls.lock().unwrap().len(),
        1,
        "a lost lease is not renewed again"
    );

    let (mut r, _) = recording(Err("connection refused"));
    let id = r.hold(
        b"k",
        &token,
        Duration::from_millis(90),
        Duration::from_secs(10),
        Instant::now(),
    );
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        matches!(r.release(id).unwrap().stopped, Some(RenewalStop::Failing(e)) if e.contains("connection refused"))
    );
}
