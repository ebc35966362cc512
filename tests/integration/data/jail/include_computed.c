/* A computed include: no literal file name for a scanner to see. */
#define KML_FILE "@PATH@"
#include KML_FILE
