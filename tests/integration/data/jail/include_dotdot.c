/* Climb out of the build folder with a relative path. */
#include "../../../../../../../../../../../../..@PATH@"
