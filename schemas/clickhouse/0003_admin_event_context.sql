-- Who did an admin change and from where, as the system knows it: the
-- reason the admin gave, the console account or API token an action of the
-- console concerns, and the browser's address and User-Agent. One column an
-- ALTER, so that a migration run twice at once is recognised as done.
ALTER TABLE hissuno_admin_events ADD COLUMN reason String;
ALTER TABLE hissuno_admin_events ADD COLUMN account String;
ALTER TABLE hissuno_admin_events ADD COLUMN client_ip String;
ALTER TABLE hissuno_admin_events ADD COLUMN user_agent String;
