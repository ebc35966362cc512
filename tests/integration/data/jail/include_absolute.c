/* The preprocessor reads any file it is told to: gcc would quote it in its errors. */
#include "@PATH@"
