//! Glob-style pattern matching for KEYS, SCAN MATCH and CONFIG GET: `*`, `?`, `[abc]`,
//! `[^a]`, `[a-z]` and `\` escapes, with Redis's semantics.

/// Whether `text` matches `pattern`. Backtracks only to the last `*`, so any pattern runs in
/// O(pattern × text) time.
pub fn matches(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut last_star: Option<(usize, usize)> = None;
    while t < text.len() {
        if let Some(&pc) = pattern.get(p) {
            let advanced = match pc {
                b'*' => {
                    while pattern.get(p) == Some(&b'*') {
                        p += 1;
                    }
                    last_star = Some((p, t));
                    continue;
                }
                b'?' => Some(p + 1),
                b'[' => {
                    let (matched, rest) = match_class(&pattern[p + 1..], text[t]);
                    matched.then(|| pattern.len() - rest.len())
                }
                b'\\' if p + 1 < pattern.len() => (pattern[p + 1] == text[t]).then_some(p + 2),
                _ => (pc == text[t]).then_some(p + 1),
            };
            if let Some(next) = advanced {
                p = next;
                t += 1;
                continue;
            }
        }
        match last_star {
            Some((after_star, star_t)) => {
                p = after_star;
                t = star_t + 1;
                last_star = Some((after_star, t));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Matches `c` against the class that starts after `[`; returns the pattern after `]`.
fn match_class(mut p: &[u8], c: u8) -> (bool, &[u8]) {
    let negate = p.first() == Some(&b'^');
    if negate {
        p = &p[1..];
    }
    let mut matched = false;
    loop {
        match p {
            [] => break,
            [b']', rest @ ..] => {
                p = rest;
                break;
            }
            [b'\\', esc, rest @ ..] => {
                matched |= *esc == c;
                p = rest;
            }
            [lo, b'-', hi, rest @ ..] if *hi != b']' => {
                let (lo, hi) = if lo <= hi { (*lo, *hi) } else { (*hi, *lo) };
                matched |= (lo..=hi).contains(&c);
                p = rest;
            }
            [x, rest @ ..] => {
                matched |= *x == c;
                p = rest;
            }
        }
    }
    (matched != negate, p)
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn glob_semantics() {
        let yes: &[(&str, &str)] = &[
            ("*", "anything"),
            ("*", ""),
            ("h?llo", "hello"),
            ("h*llo", "heeeello"),
            ("h[ae]llo", "hallo"),
            ("h[^e]llo", "hallo"),
            ("h[a-b]llo", "hbllo"),
            ("h[b-a]llo", "hallo"),
            ("h\\*llo", "h*llo"),
            ("key:*:x", "key:1:2:x"),
            ("[\\]]", "]"),
        ];
        let no: &[(&str, &str)] = &[
            ("h?llo", "hllo"),
            ("h[ae]llo", "hillo"),
            ("h[^e]llo", "hello"),
            ("h\\*llo", "hello"),
            ("a*b", "acbd"),
            ("[abc", "d"),
        ];
        for (p, t) in yes {
            assert!(matches(p.as_bytes(), t.as_bytes()), "{p} should match {t}");
        }
        for (p, t) in no {
            assert!(
                !matches(p.as_bytes(), t.as_bytes()),
                "{p} should not match {t}"
            );
        }
    }

    #[test]
    fn pathological_patterns_terminate() {
        let pattern = "a*".repeat(50) + "b";
        assert!(!matches(pattern.as_bytes(), "a".repeat(60).as_bytes()));
    }
}
