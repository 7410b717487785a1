//! What retention deletes during a run, kept for the checks: triggers of the run database copy
//! every deleted command and attempt row, as it was when deleted, into `purged_commands` and
//! `purged_attempts`, and the views `all_commands` and `all_attempts` show the live rows and the
//! purged ones together. The checks read the views, so a run with a short retention still
//! accounts for every command; and a purged row that was not finished is itself a violation
//! (retention deleted work a replay had made unfinished again).

/// Created once, after the migrations, in the run database.
pub(crate) const ARCHIVE: &str = "
create table purged_commands (like commands);
create table purged_attempts (like command_attempts);
create function check_archive_purged() returns trigger language plpgsql as $$
begin
    if tg_table_name = 'commands' then
        insert into purged_commands select (old).*;
    else
        insert into purged_attempts select (old).*;
    end if;
    return null;
end $$;
create trigger check_archive_purged after delete on commands
    for each row execute function check_archive_purged();
-- Fires for the cascade of a command's delete as well.
create trigger check_archive_purged after delete on command_attempts
    for each row execute function check_archive_purged();
create view all_commands as select * from commands union all select * from purged_commands;
create view all_attempts as
    select * from command_attempts union all select * from purged_attempts;
";
