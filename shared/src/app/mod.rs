//! The handlers, one function each, generic over the ports: evaluate, provision, reap.
