/* emul_image.h — the CUDA emulator's "cubin": KP_EMUL_MAGIC (8 bytes), the
 * length of the shared object (uint64, host order), then its bytes. Written
 * by emul_nvrtc.c, loaded by mock_cuda.c. */
#ifndef KP_EMUL_IMAGE_H
#define KP_EMUL_IMAGE_H
#define KP_EMUL_MAGIC "KPEMUL01"
#define KP_EMUL_HEADER 16
/* kp_emul_launch, exported by each image: runs kernel name over the grid; 0, or -1 with a message in err. */
typedef int (*kp_emul_launch_fn)(const char *name, const unsigned grid[3], const unsigned block[3], void **params,
                                 char *err, size_t errsize);
#endif
