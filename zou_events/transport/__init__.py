"""Everything that touches python-engineio's and python-socketio's internals: the server
(``EventServer``, whose small interface the rest of the package uses), the WebSocket driver
and its frames and outboxes, the pinger, the send backlog, the inbound meter, the polling
guard and the indexed client manager. Upgrading past the library pins means auditing this
package alone."""
