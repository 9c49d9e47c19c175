//! A peer node and its links (kernel `node.c`), spec §4.1–4.2. (In progress.)
