//! The catalogue of command types. Workers register the types they handle; the api accepts only
//! registered types, so that a command is never queued where nobody will ever run it.

use cmdbus_domain::TypeInfo;
use serde_json::Value;
use sqlx::{PgExecutor, types::Json};

use crate::StoreError;

/// Upserts type definitions.
pub async fn register_types<'c>(
    executor: impl PgExecutor<'c>,
    types: &[TypeInfo],
) -> Result<(), StoreError> {
    let names: Vec<&str> = types.iter().map(|t| t.name.as_str()).collect();
    let descriptions: Vec<&str> = types.iter().map(|t| t.description.as_str()).collect();
    let max_attempts: Vec<i32> = types.iter().map(|t| t.max_attempts).collect();
    let examples: Vec<Option<Json<&Value>>> =
        types.iter().map(|t| t.example.as_ref().map(Json)).collect();
    let schemas: Vec<Option<Json<&Value>>> = types
        .iter()
        .map(|t| t.payload_schema.as_ref().map(Json))
        .collect();
    let result_schemas: Vec<Option<Json<&Value>>> = types
        .iter()
        .map(|t| t.result_schema.as_ref().map(Json))
        .collect();
    sqlx::query(
        "insert into command_types
                (name, description, max_attempts, example, payload_schema, result_schema)
         select * from unnest($1::text[], $2::text[], $3::int4[], $4::jsonb[], $5::jsonb[],
                              $6::jsonb[])
         on conflict (name) do update
            set description = excluded.description, max_attempts = excluded.max_attempts,
                example = excluded.example, payload_schema = excluded.payload_schema,
                result_schema = excluded.result_schema, updated_at = now()",
    )
    .bind(&names)
    .bind(&descriptions)
    .bind(&max_attempts)
    .bind(&examples)
    .bind(&schemas)
    .bind(&result_schemas)
    .execute(executor)
    .await?;
    Ok(())
}

/// A `command_types` row.
#[derive(sqlx::FromRow)]
struct TypeRow {
    name: String,
    description: String,
    max_attempts: i32,
    example: Option<Json<Value>>,
    payload_schema: Option<Json<Value>>,
    result_schema: Option<Json<Value>>,
}

/// Every registered type, by name.
pub async fn list_types<'c>(executor: impl PgExecutor<'c>) -> Result<Vec<TypeInfo>, StoreError> {
    let rows: Vec<TypeRow> = sqlx::query_as(
        "select name, description, max_attempts, example, payload_schema, result_schema
           from command_types order by name",
    )
    .fetch_all(executor)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| TypeInfo {
            name: row.name,
            description: row.description,
            max_attempts: row.max_attempts,
            example: row.example.map(|json| json.0),
            payload_schema: row.payload_schema.map(|json| json.0),
            result_schema: row.result_schema.map(|json| json.0),
        })
        .collect())
}
