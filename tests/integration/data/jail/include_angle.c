/* The same through the system include form. */
#include <@PATH@>
