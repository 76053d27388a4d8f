//! Closed sets (status, phase, level, ...) stored as their text in both dialects. sqlx's
//! derive would map them to a Postgres enum type of their own name, which the schema does
//! not have; plain text keeps one schema shape for both.

use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::{Database, Decode, Encode, Type};

macro_rules! text_enum {
    ($($ty:ty),*) => {$(
        impl<DB: Database> Type<DB> for $ty
        where
            str: Type<DB>,
        {
            fn type_info() -> DB::TypeInfo {
                <str as Type<DB>>::type_info()
            }
            fn compatible(ty: &DB::TypeInfo) -> bool {
                <str as Type<DB>>::compatible(ty)
            }
        }

        impl<'q, DB: Database> Encode<'q, DB> for $ty
        where
            String: Encode<'q, DB>,
        {
            fn encode_by_ref(&self, buf: &mut <DB as Database>::ArgumentBuffer<'q>) -> Result<IsNull, BoxDynError> {
                <String as Encode<'q, DB>>::encode(text_of(self)?, buf)
            }
        }

        impl<'r, DB: Database> Decode<'r, DB> for $ty
        where
            &'r str: Decode<'r, DB>,
        {
            fn decode(value: <DB as Database>::ValueRef<'r>) -> Result<Self, BoxDynError> {
                let text = <&'r str as Decode<'r, DB>>::decode(value)?;
                serde_json::from_value(serde_json::Value::String(text.to_string()))
                    .map_err(|_| format!("{text:?} is not a {}", stringify!($ty)).into())
            }
        }
    )*};
}

/// The text serde gives a closed set's value (its `rename_all`), as the API shows it.
fn text_of<T: serde::Serialize>(value: &T) -> Result<String, BoxDynError> {
    match serde_json::to_value(value)? {
        serde_json::Value::String(text) => Ok(text),
        other => Err(format!("{other} is not text").into()),
    }
}

use crate::model::{BackendProtocol, Level, Phase, RollbackKind, Status, TlsMode};
text_enum!(Status, Phase, RollbackKind, Level, TlsMode, BackendProtocol);
