//! Command-line front end (placeholder while the engine lands).

pub fn main() -> i32 {
    0
}
