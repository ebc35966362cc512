/* A name assembled by the preprocessor from pieces that do not look like a path. */
#define KML_STR(x) #x
#define KML_XSTR(x) KML_STR(x)
#define KML_PIECE @PATH@
#include KML_XSTR(KML_PIECE)
