//! Public image renditions: size parsing, Accept negotiation, resizing, ETags.

use std::io::Cursor;
use std::path::PathBuf;

use bytes::Bytes;
use image::{DynamicImage, ImageFormat};
use sha2::{Digest, Sha256};

/// Largest side of a rendition.
pub const MAX_SIDE: u32 = 2048;
/// The default `size`.
pub const DEFAULT_SIZE: (u32, u32) = (400, 400);

/// An output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    Jpeg,
    Png,
    Webp,
}

impl Format {
    pub fn mime(self) -> &'static str {
        match self {
            Format::Jpeg => "image/jpeg",
            Format::Png => "image/png",
            Format::Webp => "image/webp",
        }
    }

    pub fn from_mime(m: &str) -> Option<Self> {
        match m {
            "image/jpeg" => Some(Format::Jpeg),
            "image/png" => Some(Format::Png),
            "image/webp" => Some(Format::Webp),
            _ => None,
        }
    }

    fn image_format(self) -> ImageFormat {
        match self {
            Format::Jpeg => ImageFormat::Jpeg,
            Format::Png => ImageFormat::Png,
            Format::Webp => ImageFormat::WebP,
        }
    }
}

/// Parses `WxH` (each side 0..=99999, capped at [`MAX_SIDE`]).
pub fn parse_size(s: Option<&str>) -> Result<(u32, u32), String> {
    let Some(s) = s else {
        return Ok(DEFAULT_SIZE);
    };
    let bad = || format!("invalid size {s:?}: expected WxH, e.g. 400x400");
    let (w, h) = s.split_once(['x', 'X']).ok_or_else(bad)?;
    let side = |t: &str| -> Result<u32, String> {
        if t.is_empty() || t.len() > 5 || !t.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        t.parse::<u32>().map(|v| v.min(MAX_SIDE)).map_err(|_| bad())
    };
    Ok((side(w)?, side(h)?))
}

/// Chooses the output format from `Accept` (q-values, `image/*`, `*/*`).
/// Ties prefer the stored format, then JPEG, PNG, WebP. When nothing acceptable
/// is offered (or no Accept is sent) the stored format is used.
pub fn negotiate(accept: Option<&str>, original: Format) -> Format {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return original;
    };
    let ranges: Vec<(String, f32)> = accept
        .split(',')
        .filter_map(|item| {
            let mut parts = item.split(';');
            let media = parts.next()?.trim().to_ascii_lowercase();
            let mut q = 1.0f32;
            for p in parts {
                if let Some((k, v)) = p.split_once('=') {
                    if k.trim().eq_ignore_ascii_case("q") {
                        q = v.trim().parse().unwrap_or(0.0);
                    }
                }
            }
            Some((media, q.clamp(0.0, 1.0)))
        })
        .collect();
    let q_of = |f: Format| -> f32 {
        let mut best: Option<(u8, f32)> = None;
        for (m, q) in &ranges {
            let spec = if m == f.mime() {
                3
            } else if m == "image/*" {
                2
            } else if m == "*/*" {
                1
            } else {
                continue;
            };
            if best.is_none_or(|(s, _)| spec > s) {
                best = Some((spec, *q));
            }
        }
        best.map_or(0.0, |(_, q)| q)
    };
    let mut order = vec![original];
    for f in [Format::Jpeg, Format::Png, Format::Webp] {
        if f != original {
            order.push(f);
        }
    }
    let mut chosen = None;
    let mut best_q = 0.0f32;
    for f in order {
        let q = q_of(f);
        if q > best_q {
            best_q = q;
            chosen = Some(f);
        }
    }
    chosen.unwrap_or(original)
}

/// The target dimensions for a source of `src` and a requested `(w, h)`.
pub fn target_dims(src: (u32, u32), req: (u32, u32)) -> (u32, u32) {
    let (sw, sh) = (src.0.max(1) as f64, src.1.max(1) as f64);
    let (w, h) = match req {
        (0, 0) => (sw.min(MAX_SIDE as f64), sh.min(MAX_SIDE as f64)),
        (0, h) => (sw * h as f64 / sh, h as f64),
        (w, 0) => (w as f64, sh * w as f64 / sw),
        (w, h) => {
            let scale = (w as f64 / sw).min(h as f64 / sh);
            (sw * scale, sh * scale)
        }
    };
    let clamp = |v: f64| (v.round() as u32).clamp(1, MAX_SIDE);
    if req == (0, 0) {
        let scale = (MAX_SIDE as f64 / sw).min(MAX_SIDE as f64 / sh).min(1.0);
        return (clamp(sw * scale), clamp(sh * scale));
    }
    (clamp(w), clamp(h))
}

/// Identifies a rendition in the cache.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RenditionKey {
    pub sha256: String,
    pub size: (u32, u32),
    pub format: Format,
}

/// An encoded rendition.
#[derive(Debug)]
pub struct Rendition {
    pub bytes: Bytes,
    /// Quoted strong ETag (hash of `bytes`).
    pub etag: String,
    pub content_type: &'static str,
}

/// Decodes, resizes and encodes (CPU-bound: run on the blocking pool).
pub fn render(path: PathBuf, size: (u32, u32), format: Format) -> Result<Rendition, String> {
    let data = std::fs::read(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let img = image::load_from_memory(&data).map_err(|e| format!("cannot decode image: {e}"))?;
    let (tw, th) = target_dims((img.width(), img.height()), size);
    let resized = if (tw, th) == (img.width(), img.height()) {
        img
    } else {
        img.resize_exact(tw, th, image::imageops::FilterType::Triangle)
    };
    let out: DynamicImage = match format {
        Format::Jpeg => DynamicImage::ImageRgb8(resized.to_rgb8()),
        Format::Webp => DynamicImage::ImageRgba8(resized.to_rgba8()),
        Format::Png => resized,
    };
    let mut buf = Cursor::new(Vec::new());
    out.write_to(&mut buf, format.image_format())
        .map_err(|e| format!("cannot encode {}: {e}", format.mime()))?;
    let bytes = Bytes::from(buf.into_inner());
    let etag = format!("\"{}\"", &hex::encode(Sha256::digest(&bytes))[..32]);
    Ok(Rendition {
        bytes,
        etag,
        content_type: format.mime(),
    })
}

/// Whether `If-None-Match` matches `etag` (strong comparison, lists and `*`).
pub fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    if_none_match
        .split(',')
        .map(str::trim)
        .any(|t| t == "*" || t == etag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        for (input, want) in [
            (None, Ok((400, 400))),
            (Some("100x50"), Ok((100, 50))),
            (Some("0x300"), Ok((0, 300))),
            (Some("5000x5000"), Ok((2048, 2048))),
            (Some("abc"), Err(())),
            (Some("10x"), Err(())),
            (Some("-1x5"), Err(())),
            (Some("123456x1"), Err(())),
        ] {
            assert_eq!(parse_size(input).map_err(|_| ()), want, "{input:?}");
        }
    }

    #[test]
    fn dims() {
        assert_eq!(target_dims((800, 400), (400, 400)), (400, 200));
        assert_eq!(target_dims((800, 400), (0, 100)), (200, 100));
        assert_eq!(target_dims((800, 400), (100, 0)), (100, 50));
        assert_eq!(target_dims((10, 10), (0, 0)), (10, 10));
        assert_eq!(target_dims((4096, 1024), (0, 0)), (2048, 512));
    }

    #[test]
    fn negotiation() {
        let sdk = "image/jpeg;q=1, image/png;q=0.7, image/webp;q=0";
        for (accept, orig, want) in [
            (Some(sdk), Format::Png, Format::Jpeg),
            (Some("image/webp"), Format::Png, Format::Webp),
            (
                Some("image/png;q=0.5, image/*;q=0.9"),
                Format::Png,
                Format::Jpeg,
            ),
            (Some("*/*"), Format::Webp, Format::Webp),
            (None, Format::Png, Format::Png),
            (Some("text/html"), Format::Jpeg, Format::Jpeg),
            (
                Some("image/jpeg;q=0, image/png;q=0.1"),
                Format::Jpeg,
                Format::Png,
            ),
        ] {
            assert_eq!(negotiate(accept, orig), want, "{accept:?}");
        }
    }

    #[test]
    fn etags() {
        assert!(etag_matches("\"a\", \"b\"", "\"b\""));
        assert!(etag_matches("*", "\"b\""));
        assert!(!etag_matches("W/\"b\"", "\"b\""));
    }
}
