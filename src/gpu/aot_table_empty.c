/* aot_table_empty.c — the kernel table of a libkp built without nvcc (KP_CUDA_AOT
 * off or no CUDA toolkit): no entries, so every kernel goes through NVRTC. Also
 * linked into the generator tool, which runs before the real table exists. */
#include "gpu/aot_table.h"

const kp_aot_entry kp__aot_entries[1] = {{{0}, 0, 0, 0}};
const size_t kp__aot_nentries = 0;
const unsigned char kp__aot_blob[1] = {0};
const char kp__aot_targets[] = "";
