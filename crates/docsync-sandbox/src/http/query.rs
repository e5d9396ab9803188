//! Query-string and form parsing that answers in the API's own error shapes
//! (axum's `Query` rejection would answer `text/plain`).

use std::collections::HashMap;

/// Decodes `application/x-www-form-urlencoded` text (`+` is a space).
pub fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// Parses `a=1&b=2`; a repeated or undecodable key is an error.
pub fn parse(query: Option<&str>) -> Result<HashMap<String, String>, String> {
    let mut out = HashMap::new();
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = percent_decode(k).ok_or_else(|| "malformed query string".to_owned())?;
        let v = percent_decode(v).ok_or_else(|| format!("malformed value of {k}"))?;
        if out.contains_key(&k) {
            return Err(format!("query parameter {k} is repeated"));
        }
        out.insert(k, v);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsing() {
        let q = parse(Some("a=1&b=x%20y+z&c")).unwrap_or_default();
        assert_eq!(q.get("a").map(String::as_str), Some("1"));
        assert_eq!(q.get("b").map(String::as_str), Some("x y z"));
        assert_eq!(q.get("c").map(String::as_str), Some(""));
        assert!(parse(Some("a=1&a=2")).is_err());
        assert!(parse(Some("a=%zz")).is_err());
        assert!(parse(None).is_ok_and(|q| q.is_empty()));
    }
}
