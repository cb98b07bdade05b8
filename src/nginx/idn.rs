//! Host names as nginx and browsers compare them: an internationalized
//! name (`äuth.example.com`) in its ASCII form (`xn--uth-pla.example.com`),
//! which MAS's `url::Url` also makes of `public_base`'s host and which a
//! `server_name` must be written in.
//!
//! Each label that is not ASCII is lower-cased and Punycode-encoded (RFC
//! 3492) behind `xn--`, as IDNA's ToASCII does. The rest of UTS #46's
//! mapping (Unicode normalization, the few characters it maps or refuses)
//! is not done: a name written decomposed, or with such characters, may
//! compare unequal to the form a browser would use.

/// Punycode's parameters (RFC 3492, section 5).
const BASE: u32 = 36;
const T_MIN: u32 = 1;
const T_MAX: u32 = 26;
const SKEW: u32 = 38;
const DAMP: u32 = 700;
const INITIAL_BIAS: u32 = 72;
const INITIAL_N: u32 = 128;

/// `host` in the ASCII form nginx and browsers use, lower-cased; `None`
/// when a label cannot be encoded (it overflows Punycode's counters).
pub(crate) fn to_ascii(host: &str) -> Option<String> {
    let labels: Option<Vec<String>> = host
        .split('.')
        .map(|label| {
            if label.is_ascii() {
                Some(label.to_ascii_lowercase())
            } else {
                punycode(&label.to_lowercase()).map(|p| format!("xn--{p}"))
            }
        })
        .collect();
    Some(labels?.join("."))
}

/// Whether two host names are one to nginx: equal in their ASCII forms.
pub(crate) fn same_host(a: &str, b: &str) -> bool {
    match (to_ascii(a), to_ascii(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// The Punycode encoding of `label` (RFC 3492, section 6.3).
fn punycode(label: &str) -> Option<String> {
    let input: Vec<u32> = label.chars().map(u32::from).collect();
    let mut output: String = label.chars().filter(char::is_ascii).collect();
    let basic = u32::try_from(output.len()).ok()?;
    let mut handled = basic;
    if basic > 0 {
        output.push('-');
    }
    let (mut n, mut delta, mut bias) = (INITIAL_N, 0u32, INITIAL_BIAS);
    while usize::try_from(handled).ok()? < input.len() {
        let m = input.iter().copied().filter(|&c| c >= n).min()?;
        delta = delta.checked_add((m - n).checked_mul(handled + 1)?)?;
        n = m;
        for &c in &input {
            if c < n {
                delta = delta.checked_add(1)?;
            }
            if c == n {
                let mut q = delta;
                let mut k = BASE;
                loop {
                    let t = if k <= bias {
                        T_MIN
                    } else if k >= bias + T_MAX {
                        T_MAX
                    } else {
                        k - bias
                    };
                    if q < t {
                        break;
                    }
                    output.push(digit(t + (q - t) % (BASE - t)));
                    q = (q - t) / (BASE - t);
                    k += BASE;
                }
                output.push(digit(q));
                bias = adapt(delta, handled + 1, handled == basic);
                delta = 0;
                handled += 1;
            }
        }
        delta = delta.checked_add(1)?;
        n = n.checked_add(1)?;
    }
    Some(output)
}

/// The bias after a code point (RFC 3492, section 6.1).
fn adapt(delta: u32, points: u32, first: bool) -> u32 {
    let mut delta = if first { delta / DAMP } else { delta / 2 };
    delta += delta / points;
    let mut k = 0;
    while delta > ((BASE - T_MIN) * T_MAX) / 2 {
        delta /= BASE - T_MIN;
        k += BASE;
    }
    k + (BASE - T_MIN + 1) * delta / (delta + SKEW)
}

/// A Punycode digit: `a`-`z` for 0-25, `0`-`9` for 26-35.
fn digit(d: u32) -> char {
    // `d < BASE` by the encoding's arithmetic; the `u8` casts cannot wrap.
    match d {
        0..=25 => char::from(b'a' + d as u8),
        _ => char::from(b'0' + (d - 26) as u8),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internationalized_labels_get_their_xn_form() {
        // RFC 3492's and browsers' forms.
        assert_eq!(
            to_ascii("äuth.example.com").as_deref(),
            Some("xn--uth-pla.example.com")
        );
        assert_eq!(
            to_ascii("Bücher.Example").as_deref(),
            Some("xn--bcher-kva.example")
        );
        assert_eq!(to_ascii("例え.jp").as_deref(), Some("xn--r8jz45g.jp"));
        assert_eq!(to_ascii("münchen.de").as_deref(), Some("xn--mnchen-3ya.de"));
        assert!(same_host("ÄUTH.example.com", "xn--uth-pla.example.com"));
        assert!(!same_host("auth.example.com", "xn--uth-pla.example.com"));
    }
}
