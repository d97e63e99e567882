//! The keys a rule-file table accepts, read from the serde struct that
//! parses it.
//!
//! A rule's keys are defined once, as the fields of its `Raw*` struct in
//! `load`. The "unknown key, did you mean…" check needs them as a list
//! before serde runs (serde stops at the first unknown field, and its
//! message has neither a suggestion nor the list of keys), so the list is
//! asked of the struct itself rather than written a second time: a key
//! added to the struct is known to the check with no other edit.

use std::fmt;

use serde::de::{self, DeserializeOwned, Deserializer, Visitor};

/// The keys `T` accepts, in declaration order (as `#[serde(rename)]` has
/// them).
///
/// A derived `Deserialize` for a struct hands its field names to
/// `deserialize_struct`; this asks it to deserialize from a deserializer
/// that only records them, then stops.
///
/// # Panics
///
/// When `T` does not deserialize as a plain struct (`#[serde(flatten)]`,
/// an enum, a hand-written impl): such a `T` has no fixed key list to
/// offer, and the unit tests of every caller would fail at once.
pub(super) fn keys_of<T: DeserializeOwned>() -> &'static [&'static str] {
    let mut keys = None;
    // The error is the point: `Stop` ends deserialization once the field
    // names are recorded.
    let _ = T::deserialize(FieldNames(&mut keys));
    keys.unwrap_or_else(|| {
        panic!(
            "{} must be a plain #[derive(Deserialize)] struct (no flatten) for its keys to be listed",
            std::any::type_name::<T>()
        )
    })
}

/// A deserializer that records the field names of the struct asked of it.
struct FieldNames<'k>(&'k mut Option<&'static [&'static str]>);

/// Ends deserialization: there is never a value to produce.
#[derive(Debug)]
struct Stop;

impl fmt::Display for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("only the field names were asked for")
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<M: fmt::Display>(_: M) -> Self {
        Stop
    }
}

impl<'de> Deserializer<'de> for FieldNames<'_> {
    type Error = Stop;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        Err(Stop)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Stop> {
        *self.0 = Some(fields);
        Err(Stop)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    #[allow(dead_code)] // only its keys are read
    struct Sample {
        first: String,
        #[serde(rename = "second_key")]
        second: Option<u32>,
    }

    #[derive(serde::Deserialize)]
    #[allow(dead_code)]
    struct Flattened {
        #[serde(flatten)]
        inner: std::collections::HashMap<String, String>,
    }

    #[test]
    fn lists_the_keys_as_serde_reads_them() {
        assert_eq!(keys_of::<Sample>(), ["first", "second_key"]);
    }

    #[test]
    #[should_panic(expected = "plain #[derive(Deserialize)] struct")]
    fn a_struct_without_fixed_keys_is_refused_loudly() {
        keys_of::<Flattened>();
    }
}
