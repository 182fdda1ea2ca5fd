//! Shorter lifetimes for one-hit sessions and crawlers: the `first_lifetime`,
//! `bot_lifetime`, `bot_first_lifetime` and `bot_pattern` options of every save_path form.
//!
//! Most sessions of a public site are made by visitors who never come back and by crawlers,
//! and each would otherwise occupy the store for the whole `session.gc_maxlifetime`. A
//! session that is new in this request is stored for `first_lifetime`; once its visitor
//! comes back (the session is read and exists), it gets the normal lifetime. Requests whose
//! User-Agent matches `bot_pattern` get `bot_first_lifetime` and `bot_lifetime` instead.
//! With no option set, everyone gets the normal lifetime, as before. The lifetime travels
//! in the write that happens anyway.

use std::fmt;
use std::time::Duration;

use regex::{Regex, RegexBuilder};

use super::parse_seconds_long;
use crate::error::ConfigError;

/// Crawlers by the words their User-Agents carry: the generic `bot`, `crawl`, `spider` and
/// `slurp` (Googlebot, bingbot, YandexBot, Baiduspider, DuckDuckBot, AhrefsBot, Yahoo! Slurp
/// and most others), plus the few well-known ones without them.
pub const DEFAULT_BOT_PATTERN: &str =
    "bot|crawl|spider|slurp|facebookexternalhit|mediapartners-google|bingpreview|ia_archiver";

/// The lifetime options of a save_path.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lifetimes {
    /// `first_lifetime`: the lifetime of a session on its first write.
    pub first: Option<Duration>,
    /// `bot_lifetime`: the lifetime of a crawler's session.
    pub bot: Option<Duration>,
    /// `bot_first_lifetime`: the lifetime of a crawler's session on its first write.
    pub bot_first: Option<Duration>,
    /// `None`: the built-in [`DEFAULT_BOT_PATTERN`].
    pub bot_pattern: Option<BotPattern>,
}

/// A compiled, case-insensitive User-Agent pattern.
#[derive(Clone)]
pub struct BotPattern {
    source: String,
    regex: Regex,
}

impl BotPattern {
    /// Compiles `bot_pattern` (a regex matched case-insensitively); refuses a bad one.
    pub fn new(source: &str) -> Result<BotPattern, ConfigError> {
        let regex = RegexBuilder::new(source)
            .case_insensitive(true)
            .size_limit(1 << 20)
            .build()
            .map_err(|_| ConfigError::Invalid {
                part: format!("bot_pattern={source}"),
                reason: "not a valid regular expression, e.g. bot|crawl|spider",
            })?;
        Ok(BotPattern {
            source: source.to_owned(),
            regex,
        })
    }

    /// Whether `user_agent` is a crawler's.
    pub fn is_match(&self, user_agent: &str) -> bool {
        self.regex.is_match(user_agent)
    }
}

impl PartialEq for BotPattern {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for BotPattern {}

impl fmt::Debug for BotPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BotPattern({:?})", self.source)
    }
}

impl Lifetimes {
    /// Takes option `name` if it is one of these; returns whether it was.
    pub(crate) fn take_option(&mut self, name: &str, value: &str) -> Result<bool, ConfigError> {
        match name {
            "first_lifetime" => self.first = Some(parse_seconds_long(name, value)?),
            "bot_lifetime" => self.bot = Some(parse_seconds_long(name, value)?),
            "bot_first_lifetime" => self.bot_first = Some(parse_seconds_long(name, value)?),
            "bot_pattern" => self.bot_pattern = Some(BotPattern::new(value)?),
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Whether any option is set, so the User-Agent matters.
    pub fn any(&self) -> bool {
        self.first.is_some() || self.bot.is_some() || self.bot_first.is_some()
    }

    /// Whether `user_agent` looks like a crawler's.
    pub fn is_bot(&self, user_agent: &str) -> bool {
        match &self.bot_pattern {
            Some(p) => p.is_match(user_agent),
            None => default_pattern().is_match(user_agent),
        }
    }

    /// How long a session written now lives: `normal` (`session.gc_maxlifetime`) unless an
    /// option says otherwise for a session that is `new` in this request, or a crawler's.
    pub fn lifetime(&self, normal: Duration, new: bool, user_agent: Option<&str>) -> Duration {
        if !self.any() {
            return normal;
        }
        let bot = user_agent.is_some_and(|ua| self.is_bot(ua));
        let chosen = match (bot, new) {
            (true, true) => self.bot_first.or(self.bot).or(self.first),
            (true, false) => self.bot,
            (false, true) => self.first,
            (false, false) => None,
        };
        chosen.unwrap_or(normal)
    }
}

fn default_pattern() -> &'static BotPattern {
    static PATTERN: std::sync::OnceLock<BotPattern> = std::sync::OnceLock::new();
    PATTERN.get_or_init(|| match BotPattern::new(DEFAULT_BOT_PATTERN) {
        Ok(p) => p,
        // The built-in pattern is a constant that a unit test compiles.
        Err(_) => unreachable!("the built-in bot pattern compiles"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOGLEBOT: &str =
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";
    const FIREFOX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";

    #[test]
    fn the_built_in_pattern_knows_the_usual_crawlers_and_not_browsers() {
        let l = Lifetimes::default();
        for ua in [
            GOOGLEBOT,
            "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
            "Mozilla/5.0 (compatible; Yahoo! Slurp; http://help.yahoo.com/help/us/ysearch/slurp)",
            "Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)",
            "facebookexternalhit/1.1",
        ] {
            assert!(l.is_bot(ua), "{ua}");
        }
        assert!(!l.is_bot(FIREFOX));
        assert!(!l.is_bot(""));
    }

    #[test]
    fn lifetimes_by_visit_and_crawler() {
        let s = Duration::from_secs;
        let normal = s(1440);
        assert_eq!(
            Lifetimes::default().lifetime(normal, true, Some(GOOGLEBOT)),
            normal
        );
        let l = Lifetimes {
            first: Some(s(60)),
            bot: Some(s(120)),
            bot_first: Some(s(30)),
            bot_pattern: None,
        };
        assert_eq!(l.lifetime(normal, true, Some(FIREFOX)), s(60));
        assert_eq!(l.lifetime(normal, false, Some(FIREFOX)), normal);
        assert_eq!(l.lifetime(normal, true, None), s(60));
        assert_eq!(l.lifetime(normal, true, Some(GOOGLEBOT)), s(30));
        assert_eq!(l.lifetime(normal, false, Some(GOOGLEBOT)), s(120));
        let only_first = Lifetimes {
            first: Some(s(60)),
            ..Lifetimes::default()
        };
        assert_eq!(only_first.lifetime(normal, true, Some(GOOGLEBOT)), s(60));
        assert_eq!(only_first.lifetime(normal, false, Some(GOOGLEBOT)), normal);
    }

    #[test]
    fn a_custom_pattern_is_case_insensitive_and_a_bad_one_is_refused() {
        let mut l = Lifetimes::default();
        assert!(l.take_option("bot_pattern", "MyMonitor|uptime").unwrap());
        assert!(l.is_bot("UptimeRobot/2.0") && !l.is_bot(GOOGLEBOT));
        let e = l
            .take_option("bot_pattern", "bot(")
            .unwrap_err()
            .to_string();
        assert!(e.contains("bot_pattern=bot("), "{e}");
        for (name, value) in [
            ("first_lifetime", "-5"),
            ("bot_lifetime", "soon"),
            ("bot_first_lifetime", "0"),
        ] {
            let e = l.take_option(name, value).unwrap_err().to_string();
            assert!(e.contains(&format!("{name}={value}")), "{e}");
        }
        assert!(!l.take_option("prefix", "x").unwrap());
    }
}
