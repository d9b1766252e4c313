-- Whether a node wants the log's notifications (carillon.events_heard): a node with websocket
-- sessions does (its listener reads the log when one arrives), a node without any does not, and a
-- write that nobody would hear sends no NOTIFY. The flag is set under the event lock before a
-- session's snapshot is taken (carillon.ws_register_many), and cleared by the node's heartbeat once
-- it has no session left (carillon.ws_heartbeat; docs/events.md, "Who is woken").
--
-- Rows that exist now belong to nodes that may have sessions and predate the flag: they start as
-- listening (a node of the version before never clears it; it is only woken more than it needs).
alter table carillon.ws_nodes add column listening boolean not null default true;
alter table carillon.ws_nodes alter column listening set default false;
