//! A reader for Universal Binary JSON (UBJSON, draft 12), the format XGBoost writes for a
//! model file whose name does not end in `.json` (the default since xgboost 2.1,
//! `save_model("model.ubj")`).
//!
//! The document becomes a [`serde_json::Value`], so one set of `Deserialize` structs reads
//! both formats. Numbers are big-endian; containers may be typed (`$`) and counted (`#`), as
//! XGBoost writes its arrays of split conditions. Every count is checked against the bytes
//! left before anything is reserved, and nesting is bounded, so a hostile file can neither
//! make this allocate more than a small multiple of its own size nor overflow the stack.

use serde_json::{Map, Number, Value};

/// Containers nested deeper than this are refused; an XGBoost model nests about six deep.
const MAX_DEPTH: usize = 128;

/// Parse a whole UBJSON document. The error is a message with the byte offset it refers to.
pub fn parse(bytes: &[u8]) -> Result<Value, String> {
    let mut reader = Reader { bytes, pos: 0 };
    let value = reader.value(0)?;
    if reader.pos != bytes.len() {
        return Err(format!(
            "{} bytes follow the document at byte {}",
            bytes.len() - reader.pos,
            reader.pos
        ));
    }
    Ok(value)
}

/// Whether `bytes` look like a UBJSON object rather than JSON text: an object marker then
/// a length marker for the first key (or a type/count marker, or the end of an empty object).
pub fn looks_like_ubjson(bytes: &[u8]) -> bool {
    matches!(
        bytes,
        [
            b'{',
            b'i' | b'U' | b'I' | b'l' | b'L' | b'$' | b'#' | b'}',
            ..
        ]
    )
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        if n > self.remaining() {
            return Err(format!(
                "the document ends at byte {} in the middle of a value that needs {n} more bytes",
                self.bytes.len()
            ));
        }
        let out = &self.bytes[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    fn byte(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// A value whose type marker is `marker` (already read).
    fn typed(&mut self, marker: u8, depth: usize) -> Result<Value, String> {
        let at = self.pos.saturating_sub(1);
        Ok(match marker {
            b'Z' => Value::Null,
            b'T' => Value::Bool(true),
            b'F' => Value::Bool(false),
            b'i' | b'U' | b'I' | b'l' | b'L' => Value::from(self.integer(marker)?),
            b'd' => float(f64::from(f32::from_be_bytes(array(self.take(4)?))), at)?,
            b'D' => float(f64::from_be_bytes(array(self.take(8)?)), at)?,
            b'C' => Value::String(char::from(self.byte()?).to_string()),
            b'S' => Value::String(self.string()?),
            b'H' => {
                // A high-precision number travels as its decimal text.
                let text = self.string()?;
                let n: f64 = text
                    .parse()
                    .map_err(|_| format!("`{text}` at byte {at} is not a number"))?;
                float(n, at)?
            }
            b'[' => self.array(depth + 1)?,
            b'{' => self.object(depth + 1)?,
            other => {
                return Err(format!(
                    "byte {at} holds `{}`, which is not a UBJSON type marker",
                    char::from(other).escape_default()
                ))
            }
        })
    }

    fn value(&mut self, depth: usize) -> Result<Value, String> {
        loop {
            let marker = self.byte()?;
            // `N` is a no-op that may stand anywhere a value may.
            if marker != b'N' {
                return self.typed(marker, depth);
            }
        }
    }

    fn integer(&mut self, marker: u8) -> Result<i64, String> {
        Ok(match marker {
            b'i' => i64::from(self.byte()? as i8),
            b'U' => i64::from(self.byte()?),
            b'I' => i64::from(i16::from_be_bytes(array(self.take(2)?))),
            b'l' => i64::from(i32::from_be_bytes(array(self.take(4)?))),
            b'L' => i64::from_be_bytes(array(self.take(8)?)),
            other => {
                return Err(format!(
                    "byte {} holds `{}` where a length was expected",
                    self.pos - 1,
                    char::from(other).escape_default()
                ))
            }
        })
    }

    /// A length or count: an integer value, which must not be negative.
    fn length(&mut self) -> Result<usize, String> {
        let at = self.pos;
        let marker = self.byte()?;
        let n = self.integer(marker)?;
        usize::try_from(n).map_err(|_| format!("the length at byte {at} is negative ({n})"))
    }

    fn string(&mut self) -> Result<String, String> {
        let at = self.pos;
        let n = self.length()?;
        let bytes = self.take(n)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|_| format!("the string at byte {at} is not UTF-8"))
    }

    /// The optional `$type` and `#count` after a container's opening marker.
    fn container_header(&mut self) -> Result<(Option<u8>, Option<usize>), String> {
        let mut element_type = None;
        if self.peek() == Some(b'$') {
            self.pos += 1;
            element_type = Some(self.byte()?);
            if self.peek() != Some(b'#') {
                return Err(format!(
                    "the typed container at byte {} has no count (`#`)",
                    self.pos
                ));
            }
        }
        let mut count = None;
        if self.peek() == Some(b'#') {
            self.pos += 1;
            count = Some(self.length()?);
        }
        Ok((element_type, count))
    }

    /// The least bytes one element of `element_type` takes, to bound a count by the input.
    fn min_size(element_type: Option<u8>) -> usize {
        match element_type {
            Some(b'I') => 2,
            Some(b'l' | b'd') => 4,
            Some(b'L' | b'D') => 8,
            // Null, booleans and no-ops in a typed container take no bytes at all; anything
            // else, and untyped elements, at least one.
            Some(b'Z' | b'T' | b'F' | b'N') => 0,
            _ => 1,
        }
    }

    fn check_count(&self, count: usize, per_item: usize) -> Result<(), String> {
        // Elements of zero width (a typed array of nulls) could claim any count: refuse
        // counts past what the input could describe element by element anyway.
        let bound = self
            .remaining()
            .checked_div(per_item)
            .unwrap_or(self.remaining());
        if count > bound {
            return Err(format!(
                "a container at byte {} claims {count} elements, more than the {} bytes left can hold",
                self.pos,
                self.remaining()
            ));
        }
        Ok(())
    }

    fn array(&mut self, depth: usize) -> Result<Value, String> {
        if depth > MAX_DEPTH {
            return Err(format!(
                "containers nest more than {MAX_DEPTH} deep at byte {}",
                self.pos
            ));
        }
        let (element_type, count) = self.container_header()?;
        let mut items = Vec::new();
        match count {
            Some(n) => {
                self.check_count(n, Self::min_size(element_type))?;
                items.reserve(n);
                for _ in 0..n {
                    items.push(match element_type {
                        Some(t) => self.typed(t, depth)?,
                        None => self.value(depth)?,
                    });
                }
            }
            None => loop {
                match self.peek() {
                    Some(b']') => {
                        self.pos += 1;
                        break;
                    }
                    Some(_) => items.push(self.value(depth)?),
                    None => return Err("the document ends inside an array".into()),
                }
            },
        }
        Ok(Value::Array(items))
    }

    fn object(&mut self, depth: usize) -> Result<Value, String> {
        if depth > MAX_DEPTH {
            return Err(format!(
                "containers nest more than {MAX_DEPTH} deep at byte {}",
                self.pos
            ));
        }
        let (element_type, count) = self.container_header()?;
        let mut map = Map::new();
        let mut entry = |reader: &mut Self| -> Result<(), String> {
            let key = reader.string()?;
            let value = match element_type {
                Some(t) => reader.typed(t, depth)?,
                None => reader.value(depth)?,
            };
            map.insert(key, value);
            Ok(())
        };
        match count {
            Some(n) => {
                // A key takes at least its length marker and one length byte.
                self.check_count(n, 2)?;
                for _ in 0..n {
                    entry(self)?;
                }
            }
            None => loop {
                match self.peek() {
                    Some(b'}') => {
                        self.pos += 1;
                        break;
                    }
                    Some(_) => entry(self)?,
                    None => return Err("the document ends inside an object".into()),
                }
            },
        }
        Ok(Value::Object(map))
    }
}

fn array<const N: usize>(bytes: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(bytes);
    out
}

fn float(v: f64, at: usize) -> Result<Value, String> {
    Number::from_f64(v)
        .map(Value::Number)
        .ok_or_else(|| format!("the number at byte {at} is {v}, which a model cannot hold"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn typed_counted_and_plain_containers() {
        // {"a": [1.5f32, -2f32] typed, "b": "xy", "c": [T, Z]}
        let mut doc = b"{i\x01a[$d#i\x02".to_vec();
        doc.extend_from_slice(&1.5f32.to_be_bytes());
        doc.extend_from_slice(&(-2.0f32).to_be_bytes());
        doc.extend_from_slice(b"i\x01bSi\x02xyi\x01c[TZ]}");
        assert!(looks_like_ubjson(&doc));
        assert_eq!(
            parse(&doc).unwrap(),
            json!({"a": [1.5, -2.0], "b": "xy", "c": [true, null]})
        );
        assert_eq!(
            parse(b"{#i\x01i\x01kl\x00\x00\x01\x00").unwrap(),
            json!({"k": 256})
        );
    }

    #[test]
    fn hostile_counts_and_depth_are_refused() {
        let err = parse(b"[$d#L\x7f\xff\xff\xff\xff\xff\xff\xff").unwrap_err();
        assert!(err.contains("claims"), "{err}");
        let err = parse(b"[#l\xff\xff\xff\xff").unwrap_err();
        assert!(err.contains("negative"), "{err}");
        let deep = vec![b'['; 10_000];
        assert!(parse(&deep).unwrap_err().contains("nest"));
        assert!(parse(b"{i\x05ab").unwrap_err().contains("ends"));
        assert!(parse(b"q")
            .unwrap_err()
            .contains("not a UBJSON type marker"));
        assert!(!looks_like_ubjson(b"{\"learner\": 1}"));
    }
}
