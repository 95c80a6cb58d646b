/* Cross-build probe: the statically allocated state a board image needs (one board
 * core with a 4096-sample (256 ms) audio ring), so `make cross` can print the RAM the
 * core takes. The board glue allocates exactly this. */
#include "kw_board.h"

struct kw_board kw_board_instance;
int16_t kw_audio_ring[4096];
