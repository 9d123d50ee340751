"""Live status boards and server cards: figures kept from the Wings sockets, rendered, edited in place."""
