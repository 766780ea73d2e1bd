//! JSON Schema's `integer`, for serde: whole numbers written either way.

use std::fmt;
use std::marker::PhantomData;

use serde::Deserializer;
use serde::de::{Error, Unexpected, Visitor};

/// Reads an integer of a JSON body as JSON Schema defines one: a number with no
/// fractional part, whether written `7`, `7.0` or `7e0`. serde's integer
/// types refuse `7.0`, so a client built from a schema saying `integer`
/// (where `7.0` is valid) would be refused. A fraction, or a number outside
/// the target's range, is an error of type or value; so is a number written
/// with a fraction or an exponent beyond 2^53, which a float cannot hold
/// exactly (`12345678901234567.0` would read as …568).
///
/// ```
/// use serde::Deserialize;
///
/// #[derive(Deserialize)]
/// struct NewItem {
///     #[serde(deserialize_with = "pattern_api::extract::integer")]
///     quantity: i32,
/// }
///
/// let item: NewItem = serde_json::from_str(r#"{"quantity": 7.0}"#).unwrap();
/// assert_eq!(item.quantity, 7);
/// assert!(serde_json::from_str::<NewItem>(r#"{"quantity": 7.5}"#).is_err());
/// assert!(serde_json::from_str::<NewItem>(r#"{"quantity": 3e10}"#).is_err());
/// assert!(serde_json::from_str::<NewItem>(r#"{"quantity": 1e300}"#).is_err());
/// ```
pub fn integer<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: TryFrom<i64> + TryFrom<u64>,
{
    deserializer.deserialize_any(Integer(PhantomData))
}

struct Integer<T>(PhantomData<T>);

impl<T: TryFrom<i64> + TryFrom<u64>> Visitor<'_> for Integer<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an integer")
    }

    fn visit_i64<E: Error>(self, v: i64) -> Result<T, E> {
        T::try_from(v).map_err(|_| E::invalid_value(Unexpected::Signed(v), &"an integer in range"))
    }

    fn visit_u64<E: Error>(self, v: u64) -> Result<T, E> {
        T::try_from(v)
            .map_err(|_| E::invalid_value(Unexpected::Unsigned(v), &"an integer in range"))
    }

    fn visit_f64<E: Error>(self, v: f64) -> Result<T, E> {
        // Whole, and within i64 (2^63 is the first float past it).
        if v.fract() != 0.0 || !v.is_finite() {
            return Err(E::invalid_type(Unexpected::Float(v), &self));
        }
        if !(-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&v) {
            return Err(E::invalid_value(
                Unexpected::Float(v),
                &"an integer in range",
            ));
        }
        #[allow(clippy::cast_possible_truncation)] // whole and in range: exact
        self.visit_i64(v as i64)
    }
}
