/* An existence (and age) oracle: gcc errors if the file is missing, warns if newer. */
#pragma GCC dependency "@PATH@"
_Pragma("GCC dependency \"@PATH@\"")
