// The shim is header-only (static inline); this file only makes it a target and runs its _Static_asserts.
#include "ringport_shim.h"
