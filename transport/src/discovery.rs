//! Neighbour discovery (kernel `discover.c`), spec §3. (In progress.)
