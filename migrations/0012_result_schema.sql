-- A typed handler declares the JSON Schema of its result beside its payload's: `GET /v1/types`
-- shows both. Null for handlers that declare none.
alter table command_types add column result_schema jsonb;
